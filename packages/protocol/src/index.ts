export * from './enums';
export * from './terminal';
export * from './token';
export * from './vm-messages';
export * from './stream';
export * from './package-manifest';
export * from './agent-env';
export * from './vm-message-checks';
