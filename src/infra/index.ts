export * from './spec.ts';
export * from './secret.ts';
export * from './desired.ts';
export * from './backend.ts';
export * from './registry.ts';
export * from './policy.ts';
export * from './goal-factory.ts';
export * from './dispatcher.ts';
