// A snapshot's head (VM_DATA_HEAD_BYTES of its first bytes, sealed like its chunks when they are):
// the commands that restore it carry it, so the restoring UA prepares for the state (a WASM UA
// grows its memory) before the download's first bytes come. Null for snapshots stored before and
// for those kept from a lost VM's staged state: their restores prepare by the first bytes.
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmSnapshotHead1766000001720 implements MigrationInterface {
    name = 'VmSnapshotHead1766000001720'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_snapshots" ADD "head" bytea`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_snapshots" DROP COLUMN "head"`);
    }

}
