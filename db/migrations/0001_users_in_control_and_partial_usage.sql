CREATE TABLE "budgets" (
	"user_id" text PRIMARY KEY NOT NULL,
	"user_set" boolean DEFAULT false NOT NULL,
	"monthly_usd" numeric(14, 8),
	"period_start" date NOT NULL,
	"spent_usd" numeric(14, 8) DEFAULT '0' NOT NULL,
	"reservations" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budgets_monthly_usd_check" CHECK ("budgets"."monthly_usd" >= 0)
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" text PRIMARY KEY NOT NULL,
	"event_type" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "key_events" DROP CONSTRAINT "key_events_action_check";--> statement-breakpoint
ALTER TABLE "key_events" ALTER COLUMN "provider" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "status" text;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "last_used_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "last_error_code" text;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "last_error_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "partial" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "tokens_estimated" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_received_idx" ON "webhook_deliveries" USING btree ("received_at");--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_status_check" CHECK ("api_keys"."status" in ('ok', 'rejected'));--> statement-breakpoint
ALTER TABLE "key_events" ADD CONSTRAINT "key_events_action_check" CHECK ("key_events"."action" in ('save', 'replace', 'delete', 'reencrypt', 'account-delete'));