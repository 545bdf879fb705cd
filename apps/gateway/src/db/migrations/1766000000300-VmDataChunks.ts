// VM Data in chunks (modules/snapshots/vm-data-store.ts): a snapshot's bytes become rows of at most
// 1 MiB, each with the sha256 of what is stored, so a gateway streams them in both directions and
// never holds a whole snapshot; chunks may be sealed (nonce set, key named on the snapshot). The
// bytes of existing snapshots are cut into chunks here, in clear as they were.
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmDataChunks1766000000300 implements MigrationInterface {
    name = 'VmDataChunks1766000000300'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "vm_data_chunks" ("snapshot_id" uuid NOT NULL, "seq" integer NOT NULL, "data" bytea NOT NULL, "nonce" bytea, "sha256" bytea NOT NULL, CONSTRAINT "PK_vm_data_chunks" PRIMARY KEY ("snapshot_id", "seq"))`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks" ADD CONSTRAINT "FK_344a657859092d27dd3b989e875" FOREIGN KEY ("snapshot_id") REFERENCES "vm_snapshots"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        // chunks are random-looking (state, sealed bytes): no compression attempt on every write
        await queryRunner.query(`ALTER TABLE "vm_data_chunks" ALTER COLUMN "data" SET STORAGE EXTERNAL`);
        await queryRunner.query(`ALTER TABLE "vm_snapshots" ADD "encryption_key_id" character varying(16)`);
        await queryRunner.query(`INSERT INTO "vm_data_chunks" ("snapshot_id", "seq", "data", "sha256")
            SELECT b."snapshot_id", c.seq, c.data, sha256(c.data)
              FROM "vm_data_blobs" b,
                   LATERAL (SELECT g AS seq, substring(b."data" FROM g * 1048576 + 1 FOR 1048576) AS data
                              FROM generate_series(0, (length(b."data") - 1) / 1048576) g) c
             WHERE length(b."data") > 0`);
        await queryRunner.query(`UPDATE "vm_snapshots" SET "storage_key" = 'postgres:vm_data_chunks' WHERE "storage_key" = 'postgres:vm_data_blobs'`);
        await queryRunner.query(`DROP TABLE "vm_data_blobs"`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "vm_data_blobs" ("snapshot_id" uuid NOT NULL, "data" bytea NOT NULL, CONSTRAINT "PK_37ba250f1a2656d8f509cda2682" PRIMARY KEY ("snapshot_id"))`);
        await queryRunner.query(`ALTER TABLE "vm_data_blobs" ADD CONSTRAINT "FK_37ba250f1a2656d8f509cda2682" FOREIGN KEY ("snapshot_id") REFERENCES "vm_snapshots"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        // sealed snapshots cannot go back into clear rows without their key: they are dropped
        await queryRunner.query(`DELETE FROM "vm_snapshots" WHERE "encryption_key_id" IS NOT NULL`);
        await queryRunner.query(`INSERT INTO "vm_data_blobs" ("snapshot_id", "data")
            SELECT "snapshot_id", string_agg("data", ''::bytea ORDER BY "seq") FROM "vm_data_chunks" GROUP BY "snapshot_id"`);
        await queryRunner.query(`UPDATE "vm_snapshots" SET "storage_key" = 'postgres:vm_data_blobs' WHERE "storage_key" = 'postgres:vm_data_chunks'`);
        await queryRunner.query(`ALTER TABLE "vm_snapshots" DROP COLUMN "encryption_key_id"`);
        await queryRunner.query(`DROP TABLE "vm_data_chunks"`);
    }

}
