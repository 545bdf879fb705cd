export { X11Runtime, type X11RuntimeOptions } from './x11-runtime';
export { X11Instance } from './x11-instance';
export { X11PackageError, type X11Manifest } from './package';
export { charKeysym } from './keyboard';
export { lookupUser, resolveUaUser, type UaUser } from './ua-user';
