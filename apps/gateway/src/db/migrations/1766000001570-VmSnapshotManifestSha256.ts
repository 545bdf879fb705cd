// VM Data: the sha256 of a snapshot's chunk addresses in order, which checks the manifest's order on
// a read without hashing every byte again (older snapshots have none: checked by their whole sha256).
import { MigrationInterface, QueryRunner } from "typeorm";

export class VmSnapshotManifestSha2561766000001570 implements MigrationInterface {
    name = 'VmSnapshotManifestSha2561766000001570'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_snapshots" ADD "manifest_sha256" character(64)`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "vm_snapshots" DROP COLUMN "manifest_sha256"`);
    }

}
