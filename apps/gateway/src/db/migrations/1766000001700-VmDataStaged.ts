// VM Data staged ahead (modules/snapshots/vm-data-store.postgres.ts): a live session's FULL state,
// chunk by chunk, so that its save at a drop sends only what changed since. The foreign key to the
// chunk (NO ACTION) keeps the collector from removing a staged chunk, as a manifest's does; the rows
// go with their session. Each row also carries the whole staged state's size and sha256, which make
// it a snapshot when its VM is lost before it could save.
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmDataStaged1766000001700 implements MigrationInterface {
    name = 'VmDataStaged1766000001700'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "vm_data_staged" ("session_id" uuid NOT NULL, "seq" integer NOT NULL, "address" bytea NOT NULL, "plain_sha256" bytea NOT NULL, "state_bytes" integer NOT NULL, "state_sha256" character(64) NOT NULL, "staged_at" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "PK_ca2d8149d48b7ca674078217a07" PRIMARY KEY ("session_id", "seq"))`);
        await queryRunner.query(`CREATE INDEX "ix_vm_data_staged_address" ON "vm_data_staged" ("address")`);
        await queryRunner.query(`ALTER TABLE "vm_data_staged" ADD CONSTRAINT "FK_f2a4e140b8f96135fbdafd25c17" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "vm_data_staged" ADD CONSTRAINT "FK_9d5efbbefb5db7a03e1f548cadd" FOREIGN KEY ("address") REFERENCES "vm_data_chunks"("address") ON DELETE NO ACTION ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP TABLE "vm_data_staged"`);
    }

}
