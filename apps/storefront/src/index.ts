export { Storefront, type CatalogEntry, type ManifestOverrides, type StorefrontOptions } from './storefront';
export { provideApplication, ProvideError, type ProvidedProcurement } from './provider';
