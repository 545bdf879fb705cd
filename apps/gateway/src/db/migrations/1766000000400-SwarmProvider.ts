// VMs provided as Docker Swarm services (UVE_VM_PROVIDER=SWARM).
import { MigrationInterface, QueryRunner } from "typeorm";

export class SwarmProvider1766000000400 implements MigrationInterface {
    name = 'SwarmProvider1766000000400'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TYPE "public"."vm_provider" ADD VALUE IF NOT EXISTS 'SWARM'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // PostgreSQL cannot drop an enum value, and the records of SWARM VMs are history (sessions
        // refer to them): the value stays, unused by code that predates it
        void queryRunner;
    }

}
