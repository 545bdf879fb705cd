// Watchers: a grant remembers that its watcher monitors the watchee, so sessions started meanwhile
// are offered to the watcher too.
import { MigrationInterface, QueryRunner } from "typeorm";

export class WatcherMonitoringSince1766000000100 implements MigrationInterface {
    name = 'WatcherMonitoringSince1766000000100'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "watcher_grants" ADD "monitoring_since" TIMESTAMP WITH TIME ZONE`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "watcher_grants" DROP COLUMN "monitoring_since"`);
    }

}
