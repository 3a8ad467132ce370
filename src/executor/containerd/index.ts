export * from './client.js';
export * from './containerd-runtime.js';
export * from './images.js';
export * from './network.js';
export * from './oci-layout.js';
export * from './own-containerd.js';
export * from './registry.js';
export * from './spec.js';
export { containerdRuntimeFactory, containerdSettingsFrom, type ContainerdSettings } from './runtime-factory.js';
