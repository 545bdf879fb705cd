// VM Data bytes live beside their VmSnapshot record, in PostgreSQL, so any gateway serves any VM.
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmDataBlobs1764100000000 implements MigrationInterface {
    name = 'VmDataBlobs1764100000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "vm_data_blobs" ("snapshot_id" uuid NOT NULL, "data" bytea NOT NULL, CONSTRAINT "PK_37ba250f1a2656d8f509cda2682" PRIMARY KEY ("snapshot_id"))`);
        await queryRunner.query(`ALTER TABLE "vm_data_blobs" ADD CONSTRAINT "FK_37ba250f1a2656d8f509cda2682" FOREIGN KEY ("snapshot_id") REFERENCES "vm_snapshots"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_data_blobs" DROP CONSTRAINT "FK_37ba250f1a2656d8f509cda2682"`);
        await queryRunner.query(`DROP TABLE "vm_data_blobs"`);
    }

}
