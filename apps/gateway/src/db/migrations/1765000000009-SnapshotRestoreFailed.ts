// Reconnection with VM Data: a restore the VM could not do (fresh start) is an event of its own.
import { MigrationInterface, QueryRunner } from "typeorm";

export class SnapshotRestoreFailed1765000000009 implements MigrationInterface {
    name = 'SnapshotRestoreFailed1765000000009'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TYPE "public"."session_event_type" ADD VALUE IF NOT EXISTS 'SNAPSHOT_RESTORE_FAILED'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // PostgreSQL cannot drop an enum value; events of this type are removed so a re-run is clean
        await queryRunner.query(`DELETE FROM "session_events" WHERE "type" = 'SNAPSHOT_RESTORE_FAILED'`);
    }

}
