// Autoscaling: each VM says why it was started (admin, warm pool, waiting requests, no headroom).
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmStartReason1766000000500 implements MigrationInterface {
    name = 'VmStartReason1766000000500'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vms" ADD "start_reason" character varying(500)`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vms" DROP COLUMN "start_reason"`);
    }

}
