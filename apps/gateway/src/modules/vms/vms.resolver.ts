import { Arg, Authorized, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Query, Resolver, Root, Subscription } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { Platform } from '@uve/protocol';
import type { VmEventPayload } from '../../common/pubsub';
import type { Context } from '../../graphql/context';
import { PlatformEnum, VmEventTypeEnum, VmStatusEnum, type VmEventType, type VmStatus } from '../../graphql/enums';
import { adminOnlyStream } from '../../graphql/subscriptions';
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

@ObjectType({ description: 'A VM recorded for an agent the operator runs: start it with UVE_VM_ID = vm.id and its secret (shown once).' })
export class VmEnrollment {
  @Field(() => Vm) vm!: Vm;
  @Field({ description: "the VM's credential: it signs the VM's UVE-5 reports and authenticates its VM Data calls; only a hash is kept" }) secret!: string;
}

@Resolver(() => Vm)
export class VmsResolver {
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
    return ctx.services.vms.provision(input);
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
    return ctx.services.vms.remove(id);
  }

  @Subscription(() => VmEvent, {
    description: 'admin',
    subscribe: ({ context }) => adminOnlyStream(context as Context, (context as Context).services.pubsub.subscribe('VM_EVENT')),
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

@Resolver(() => VmEvent)
export class VmEventsResolver {
  @FieldResolver(() => Vm)
  vm(@Root() ev: VmEvent, @Ctx() ctx: Context): Promise<Vm> {
    return ctx.services.vms.get(ev.vmId);
  }
}
