import { Arg, Authorized, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Query, Resolver, Root, Subscription } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { Platform } from '@uve/protocol';
import type { VmEventPayload } from '../../common/pubsub';
import type { Context } from '../../common/context';
import { PlatformEnum } from '../../common/enums';
import { VmEventTypeEnum, VmStatusEnum, type VmEventType, type VmStatus } from './vms.enums';
import { adminOnlyStream } from '../../common/subscriptions';
import { UaDeployment } from '../uas/uas.entity';
import { ProvisionVmInput } from './vms.inputs';
import { Vm } from './vms.entity';

@ObjectType()
export class VmEvent {
  vmId!: string;
  @Field(() => VmEventTypeEnum) type!: VmEventType;
  @Field() at!: Date;
  @Field(() => GraphQLJSON, { nullable: true }) data!: Record<string, unknown> | null;
}

@ObjectType({ description: 'The pool manager for one platform: what runs, what it wants to start and why, and what stops it.' })
export class VmPoolPlatform {
  @Field(() => PlatformEnum) platform!: Platform;
  @Field(() => Int, { description: 'idle VMs kept warm (UVE_WARM_VMS where the platform is pooled, else 0)' }) warmTarget!: number;
  @Field(() => Int) idleVms!: number;
  @Field(() => Int, { description: 'ready VMs with sessions' }) busyVms!: number;
  @Field(() => Int, { description: 'VMs being provisioned' }) startingVms!: number;
  @Field(() => Int, { description: 'VMs with sessions at or above UVE_VM_CPU_HIGH' }) hotVms!: number;
  @Field(() => Int, { description: 'free session slots on VMs that are not hot' }) freeSlots!: number;
  @Field(() => Int, { description: 'requests waiting for a VM of this platform' }) waitingRequests!: number;
  @Field(() => Int, { description: 'VMs the pool would start now' }) wantsMore!: number;
  @Field(() => String, { nullable: true, description: 'why it would start them' }) reason!: string | null;
  @Field(() => String, { nullable: true, description: 'why no VM of this platform can be started here now (no runtime on this host, a failing launch backing off, no pool manager)' }) unavailable!: string | null;
}

@ObjectType({ description: 'A VM recorded for an agent the operator runs: start it with UVE_VM_ID = vm.id and its secret (shown once).' })
export class VmEnrollment {
  @Field(() => Vm) vm!: Vm;
  @Field({ description: "the VM's credential: it signs the VM's UVE-5 reports and authenticates its VM Data calls; only a hash is kept" }) secret!: string;
}

@Resolver(() => Vm)
export class VmsResolver {
  @Authorized('ADMIN')
  @Query(() => [VmPoolPlatform], { description: 'admin: the VM pool per platform' })
  vmPool(@Ctx() ctx: Context): Promise<VmPoolPlatform[]> {
    return ctx.services.vms.poolStatus();
  }

  @Authorized('ADMIN')
  @Query(() => [Vm])
  vms(@Arg('status', () => VmStatusEnum, { nullable: true }) status: VmStatus | null, @Arg('platform', () => PlatformEnum, { nullable: true }) platform: Platform | null, @Ctx() ctx: Context): Promise<Vm[]> {
    return ctx.services.vms.list(status, platform);
  }

  @Authorized('ADMIN')
  @Query(() => Vm, { nullable: true })
  vm(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.get(id);
  }

  @Authorized('ADMIN')
  @Mutation(() => Vm)
  provisionVm(@Arg('input', () => ProvisionVmInput) input: ProvisionVmInput, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.provision(input, `provisioned by ${adminName(ctx)}`);
  }

  @Authorized('ADMIN')
  @Mutation(() => VmEnrollment, { description: 'admin: records a VM whose agent the operator starts (no provider launches it); only an enrolled or provisioned VM may register' })
  enrollVm(@Arg('input', () => ProvisionVmInput) input: ProvisionVmInput, @Ctx() ctx: Context): Promise<VmEnrollment> {
    return ctx.services.vms.enroll(input);
  }

  @Authorized('ADMIN')
  @Mutation(() => Vm)
  drainVm(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.drain(id);
  }

  @Authorized('ADMIN')
  @Mutation(() => Vm)
  removeVm(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.remove(id, `removed by ${adminName(ctx)}`);
  }

  @Subscription(() => VmEvent, {
    description: 'admin',
    subscribe: ({ context }) => adminOnlyStream(context as Context, 'VM_EVENT'),
  })
  vmEvents(@Root() ev: VmEventPayload): VmEvent {
    return { vmId: ev.vmId, type: ev.type as VmEventType, at: new Date(ev.at), data: ev.data };
  }

  @FieldResolver(() => VmStatusEnum)
  status(@Root() vm: Vm, @Ctx() ctx: Context): Promise<VmStatus> {
    return ctx.services.vms.status(vm);
  }

  @FieldResolver(() => Int)
  activeSessions(@Root() vm: Vm, @Ctx() ctx: Context): Promise<number> {
    return ctx.services.vms.activeSessions(vm.id);
  }

  @FieldResolver(() => [UaDeployment])
  deployments(@Root() vm: Vm, @Ctx() ctx: Context): Promise<UaDeployment[]> {
    return ctx.services.vms.deployments(vm.id);
  }
}

/** who an admin operation is recorded as */
function adminName(ctx: Context): string {
  return ctx.principal?.kind === 'user' ? `admin ${ctx.principal.user.username}` : 'an admin';
}

@Resolver(() => VmEvent)
export class VmEventsResolver {
  @FieldResolver(() => Vm)
  vm(@Root() ev: VmEvent, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.get(ev.vmId);
  }
}
