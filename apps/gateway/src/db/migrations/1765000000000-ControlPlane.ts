// The control plane that survives faults: the UVE-2 outbox (vm_commands), the UVE-5 session-report
// inbox (vm_reports) with the last applied seq per session, and why a VM is in its status.
import { MigrationInterface, QueryRunner } from "typeorm";

export class ControlPlane1765000000000 implements MigrationInterface {
    name = 'ControlPlane1765000000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."vm_command_outcome" AS ENUM('done', 'expired', 'failed', 'cancelled')`);
        await queryRunner.query(`CREATE TABLE "vm_commands" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "vm_id" uuid NOT NULL, "session_id" uuid, "type" character varying(64) NOT NULL, "command" jsonb NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "next_attempt_at" TIMESTAMP WITH TIME ZONE NOT NULL, "attempts" integer NOT NULL DEFAULT '0', "last_sent_at" TIMESTAMP WITH TIME ZONE, "outcome" "public"."vm_command_outcome", "settled_at" TIMESTAMP WITH TIME ZONE, "error" character varying(1024), CONSTRAINT "PK_77a38c4cb1a85ae10141da7483b" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "ix_vm_commands_vm" ON "vm_commands"  ("vm_id") `);
        await queryRunner.query(`CREATE INDEX "ix_vm_commands_pending" ON "vm_commands"  ("outcome", "next_attempt_at") `);
        await queryRunner.query(`CREATE TABLE "vm_reports" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "session_id" uuid NOT NULL, "vm_id" uuid NOT NULL, "seq" integer NOT NULL, "type" character varying(64) NOT NULL, "message" jsonb NOT NULL, "received_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "applied_at" TIMESTAMP WITH TIME ZONE, "result" character varying(16), "attempts" integer NOT NULL DEFAULT '0', "next_attempt_at" TIMESTAMP WITH TIME ZONE, "error" character varying(1024), CONSTRAINT "uq_vm_reports_session_vm_seq" UNIQUE ("session_id", "vm_id", "seq"), CONSTRAINT "PK_3782a87a27341fc0be57c6bc8ca" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "ix_vm_reports_pending" ON "vm_reports"  ("applied_at", "session_id") `);
        await queryRunner.query(`ALTER TABLE "vms" ADD "status_reason" character varying(500)`);
        await queryRunner.query(`ALTER TABLE "vms" ADD "destroyed_at" TIMESTAMP WITH TIME ZONE`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "last_report_seq" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "vm_commands" ADD CONSTRAINT "FK_ce3dce01d56ae00d5d43c60f61a" FOREIGN KEY ("vm_id") REFERENCES "vms"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_commands" DROP CONSTRAINT "FK_ce3dce01d56ae00d5d43c60f61a"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "last_report_seq"`);
        await queryRunner.query(`ALTER TABLE "vms" DROP COLUMN "destroyed_at"`);
        await queryRunner.query(`ALTER TABLE "vms" DROP COLUMN "status_reason"`);
        await queryRunner.query(`DROP INDEX "public"."ix_vm_reports_pending"`);
        await queryRunner.query(`DROP TABLE "vm_reports"`);
        await queryRunner.query(`DROP INDEX "public"."ix_vm_commands_pending"`);
        await queryRunner.query(`DROP INDEX "public"."ix_vm_commands_vm"`);
        await queryRunner.query(`DROP TABLE "vm_commands"`);
        await queryRunner.query(`DROP TYPE "public"."vm_command_outcome"`);
    }

}
