// VM Data content-addressed (modules/snapshots/vm-data-store.postgres.ts): a chunk is kept once,
// keyed by its address, and a snapshot is its manifest (snapshot, seq -> address). The manifest's
// foreign key to the chunk (NO ACTION) is what keeps the collector from removing a chunk any
// committed or in-flight manifest refers to. Existing chunks are carried over: a row's address is
// its stored sha256 (a clear chunk's checksum is the sha256 of its plain bytes, as new addresses;
// a sealed chunk's bytes are unique by their random nonce), and sealed ones keep what they were
// bound to (their snapshot and position) as `aad`.
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmDataContentAddressed1766000000900 implements MigrationInterface {
    name = 'VmDataContentAddressed1766000000900'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_data_chunks" RENAME TO "vm_data_chunks_v1"`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks_v1" RENAME CONSTRAINT "PK_vm_data_chunks" TO "PK_vm_data_chunks_v1"`);
        await queryRunner.query(`CREATE TABLE "vm_data_chunks" ("address" bytea NOT NULL, "data" bytea NOT NULL, "nonce" bytea, "aad" bytea, "sha256" bytea NOT NULL, CONSTRAINT "PK_vm_data_chunks" PRIMARY KEY ("address"))`);
        // chunks are random-looking (state, sealed bytes): no compression attempt on every write
        await queryRunner.query(`ALTER TABLE "vm_data_chunks" ALTER COLUMN "data" SET STORAGE EXTERNAL`);
        await queryRunner.query(`CREATE TABLE "vm_data_manifests" ("snapshot_id" uuid NOT NULL, "seq" integer NOT NULL, "address" bytea NOT NULL, CONSTRAINT "PK_vm_data_manifests" PRIMARY KEY ("snapshot_id", "seq"))`);
        await queryRunner.query(`CREATE INDEX "ix_vm_data_manifests_address" ON "vm_data_manifests" ("address")`);
        await queryRunner.query(`ALTER TABLE "vm_data_manifests" ADD CONSTRAINT "FK_ba1b0703206b0c31c117dbefae0" FOREIGN KEY ("snapshot_id") REFERENCES "vm_snapshots"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "vm_data_manifests" ADD CONSTRAINT "FK_26d8f939361e6ac2d8ff2b4c31f" FOREIGN KEY ("address") REFERENCES "vm_data_chunks"("address") ON DELETE NO ACTION ON UPDATE NO ACTION`);
        await queryRunner.query(`INSERT INTO "vm_data_chunks" ("address", "data", "nonce", "aad", "sha256")
            SELECT DISTINCT ON ("sha256") "sha256", "data", "nonce",
                   CASE WHEN "nonce" IS NULL THEN NULL ELSE convert_to("snapshot_id"::text || '/' || "seq", 'UTF8') END, "sha256"
              FROM "vm_data_chunks_v1" ORDER BY "sha256", "snapshot_id", "seq"`);
        await queryRunner.query(`INSERT INTO "vm_data_manifests" ("snapshot_id", "seq", "address") SELECT "snapshot_id", "seq", "sha256" FROM "vm_data_chunks_v1"`);
        await queryRunner.query(`DROP TABLE "vm_data_chunks_v1"`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // chunks sealed to their address cannot be bound to a position without their key: dropped
        await queryRunner.query(`DELETE FROM "vm_snapshots" s WHERE EXISTS (SELECT 1 FROM "vm_data_manifests" m JOIN "vm_data_chunks" c ON c."address" = m."address"
            WHERE m."snapshot_id" = s."id" AND c."nonce" IS NOT NULL AND c."aad" IS NULL)`);
        await queryRunner.query(`CREATE TABLE "vm_data_chunks_v1" ("snapshot_id" uuid NOT NULL, "seq" integer NOT NULL, "data" bytea NOT NULL, "nonce" bytea, "sha256" bytea NOT NULL, CONSTRAINT "PK_vm_data_chunks_v1" PRIMARY KEY ("snapshot_id", "seq"))`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks_v1" ADD CONSTRAINT "FK_344a657859092d27dd3b989e875" FOREIGN KEY ("snapshot_id") REFERENCES "vm_snapshots"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks_v1" ALTER COLUMN "data" SET STORAGE EXTERNAL`);
        await queryRunner.query(`INSERT INTO "vm_data_chunks_v1" ("snapshot_id", "seq", "data", "nonce", "sha256")
            SELECT m."snapshot_id", m."seq", c."data", c."nonce", c."sha256" FROM "vm_data_manifests" m JOIN "vm_data_chunks" c ON c."address" = m."address"`);
        await queryRunner.query(`DROP TABLE "vm_data_manifests"`);
        await queryRunner.query(`DROP TABLE "vm_data_chunks"`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks_v1" RENAME TO "vm_data_chunks"`);
        await queryRunner.query(`ALTER TABLE "vm_data_chunks" RENAME CONSTRAINT "PK_vm_data_chunks_v1" TO "PK_vm_data_chunks"`);
    }

}
