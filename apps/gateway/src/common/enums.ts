// The enums the VMM shares with its VMs and clients through @uve/protocol (platforms, codecs,
// reconnection methods...), registered once for GraphQL so the database, the schema and the wire
// agree. Enums of one domain live with it (modules/<domain>/<domain>.enums.ts) and use asEnum.
import { registerEnumType } from 'type-graphql';
import {
  DEPLOYMENT_STATUSES,
  LOCAL_RESOURCE_KINDS,
  NO_LOSS_SCOPES,
  PLATFORMS,
  RECONNECTION_METHODS,
  SNAPSHOT_KINDS,
  VIDEO_CODECS,
  VM_PROVIDERS,
} from '@uve/protocol';

/** A value list as the object type-graphql registers (each value its own name). */
export const asEnum = <T extends string>(values: readonly T[]): { [K in T]: K } =>
  Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

export const PlatformEnum = asEnum(PLATFORMS);
export const VideoCodecEnum = asEnum(VIDEO_CODECS);
export const LocalResourceKindEnum = asEnum(LOCAL_RESOURCE_KINDS);
export const ReconnectionMethodEnum = asEnum(RECONNECTION_METHODS);
export const SnapshotKindEnum = asEnum(SNAPSHOT_KINDS);
export const NoLossScopeEnum = asEnum(NO_LOSS_SCOPES);
export const VmProviderEnum = asEnum(VM_PROVIDERS);
export const DeploymentStatusEnum = asEnum(DEPLOYMENT_STATUSES);

registerEnumType(PlatformEnum, {
  name: 'Platform',
  valuesConfig: {
    WASM: { description: 'WebAssembly UAs run by the VM agent itself (portable, snapshot-able byte for byte)' },
    LINUX_X11: { description: 'Linux GUI UAs in a virtual X display inside the VM' },
  },
});
registerEnumType(VideoCodecEnum, { name: 'VideoCodec' });
registerEnumType(LocalResourceKindEnum, { name: 'LocalResourceKind' });
registerEnumType(ReconnectionMethodEnum, {
  name: 'ReconnectionMethod',
  description: 'How UVE entities behave after an unexpected disconnect (seed 7.2).',
  valuesConfig: {
    NORMAL: { description: 'application data is saved; on reconnect the UA is reloaded per its own logic' },
    NO_LOSS: { description: 'the whole VM state is saved; on reconnect the user continues exactly where they were' },
  },
});
registerEnumType(SnapshotKindEnum, {
  name: 'SnapshotKind',
  valuesConfig: {
    APP_DATA: { description: 'application data only (NORMAL reconnection)' },
    FULL: { description: 'the full VM state at one point in time (NO_LOSS reconnection)' },
  },
});
registerEnumType(NoLossScopeEnum, { name: 'NoLossScope', description: 'What NO_LOSS reconnection really gives for a UA, by its platform.', valuesConfig: {
  ANY_VM: { description: 'the full state (memory, globals, clock) is saved at a drop and restored byte for byte on any VM' },
  SAME_VM_WITHIN_WINDOW: { description: 'no process checkpoint on this host (criu fails on this kernel): within the reconnect window the UA waits frozen on its VM and the user goes back to it; after the window, or on another VM, the application data is restored, as NORMAL' },
} });
registerEnumType(VmProviderEnum, { name: 'VmProvider' });
registerEnumType(DeploymentStatusEnum, { name: 'DeploymentStatus' });
