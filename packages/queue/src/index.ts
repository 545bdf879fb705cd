export * from './bus';
export * from './report-auth';
