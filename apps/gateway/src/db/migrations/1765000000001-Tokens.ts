// Login tokens that end before their expiry: logged-out token ids, and a per-user generation that
// revoking all of a user's tokens increments.
import { MigrationInterface, QueryRunner } from "typeorm";

export class Tokens1765000000001 implements MigrationInterface {
    name = 'Tokens1765000000001'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "revoked_tokens" ("jti" uuid NOT NULL, "user_id" uuid NOT NULL, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "PK_b18aa48269f87cafba8c6310624" PRIMARY KEY ("jti"))`);
        await queryRunner.query(`CREATE INDEX "ix_revoked_tokens_expires" ON "revoked_tokens"  ("expires_at") `);
        await queryRunner.query(`ALTER TABLE "users" ADD "token_generation" integer NOT NULL DEFAULT '0'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "users" DROP COLUMN "token_generation"`);
        await queryRunner.query(`DROP INDEX "public"."ix_revoked_tokens_expires"`);
        await queryRunner.query(`DROP TABLE "revoked_tokens"`);
    }

}
