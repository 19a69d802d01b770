// SQLite: the `tasks` table and its listing indexes. Checked-in migrations are append-only: never
// edit one that has shipped; add the next file and list it in ../index.ts.
import { Migration } from '@mikro-orm/migrations';

export class CreateTasks extends Migration {
  override up(): void {
    this.addSql(`create table "tasks" (
      "id" text not null primary key,
      "owner" text not null,
      "queue" text not null,
      "task" text not null,
      "status" text not null,
      "submitted_at" datetime not null,
      "started_at" datetime null,
      "finished_at" datetime null,
      "attempts" integer not null default 0,
      "error_code" text null,
      "token_consumption" json null,
      "storage_ids" json not null default '[]',
      "input_digest" text not null,
      "updated_at" datetime not null
    );`);
    this.addSql(
      'create index "tasks_owner_submitted_idx" on "tasks" ("owner", "submitted_at" DESC, "id" DESC);',
    );
    this.addSql('create index "tasks_owner_status_idx" on "tasks" ("owner", "status");');
    this.addSql('create index "tasks_owner_queue_idx" on "tasks" ("owner", "queue");');
  }

  override down(): void {
    this.addSql('drop table if exists "tasks";');
  }
}
