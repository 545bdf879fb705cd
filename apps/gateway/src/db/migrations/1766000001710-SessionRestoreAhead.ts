// Restore ahead (sessions.service.ts prepareRestoreAhead): a DISCONNECTED session names the VM told
// to restore its VM Data while the PLAYER is away, and which snapshot; its reconnection prefers that
// VM, and that VM may read that snapshot. The VM row going away clears it. A RESTORE_AHEAD event
// says when it was asked.
import { MigrationInterface, QueryRunner } from "typeorm";

export class SessionRestoreAhead1766000001710 implements MigrationInterface {
    name = 'SessionRestoreAhead1766000001710'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TYPE "public"."session_event_type" ADD VALUE IF NOT EXISTS 'RESTORE_AHEAD'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "restore_ahead_vm_id" uuid`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "restore_ahead_snapshot_id" uuid`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD CONSTRAINT "FK_971e4297de6a6ad9b24fec4022a" FOREIGN KEY ("restore_ahead_vm_id") REFERENCES "vms"("id") ON DELETE SET NULL ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "FK_971e4297de6a6ad9b24fec4022a"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "restore_ahead_snapshot_id"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "restore_ahead_vm_id"`);
        // PostgreSQL cannot drop an enum value; events of this type are removed so a re-run is clean
        await queryRunner.query(`DELETE FROM "session_events" WHERE "type" = 'RESTORE_AHEAD'`);
    }

}
