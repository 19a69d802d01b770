// PostgreSQL: the `tasks` table and its listing indexes. Checked-in migrations are append-only:
// never edit one that has shipped; add the next file and list it in ../index.ts.
import { Migration } from '@mikro-orm/migrations';

export class CreateTasks extends Migration {
  override up(): void {
    this.addSql(`create table "tasks" (
      "id" varchar(64) not null,
      "owner" varchar(255) not null,
      "queue" varchar(64) not null,
      "task" varchar(128) not null,
      "status" varchar(16) not null,
      "submitted_at" timestamptz not null,
      "started_at" timestamptz null,
      "finished_at" timestamptz null,
      "attempts" int not null default 0,
      "error_code" varchar(64) null,
      "token_consumption" jsonb null,
      "storage_ids" jsonb not null default '[]',
      "input_digest" varchar(64) not null,
      "updated_at" timestamptz not null,
      primary key ("id")
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
