// Storefront procurement and catalog truth: a UA version is requestable only once AVAILABLE (some
// VM installed it), with the reason when it FAILED; a removed UA keeps its row (sessions, history).
import { MigrationInterface, QueryRunner } from "typeorm";

export class Procurement1765000000020 implements MigrationInterface {
    name = 'Procurement1765000000020'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."ua_version_status" AS ENUM('PENDING', 'AVAILABLE', 'FAILED')`);
        await queryRunner.query(`ALTER TABLE "ua_versions" ADD "status" "public"."ua_version_status" NOT NULL DEFAULT 'PENDING'`);
        await queryRunner.query(`ALTER TABLE "ua_versions" ADD "error" character varying(1024)`);
        await queryRunner.query(`ALTER TABLE "ua_versions" ADD "metadata" jsonb`);
        await queryRunner.query(`ALTER TABLE "uas" ADD "removed_at" TIMESTAMP WITH TIME ZONE`);
        // what was there before was offered as it was
        await queryRunner.query(`UPDATE "ua_versions" SET "status" = 'AVAILABLE'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "uas" DROP COLUMN "removed_at"`);
        await queryRunner.query(`ALTER TABLE "ua_versions" DROP COLUMN "metadata"`);
        await queryRunner.query(`ALTER TABLE "ua_versions" DROP COLUMN "error"`);
        await queryRunner.query(`ALTER TABLE "ua_versions" DROP COLUMN "status"`);
        await queryRunner.query(`DROP TYPE "public"."ua_version_status"`);
    }

}
