ALTER TABLE "usage_events" ADD COLUMN "partial" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "tokens_estimated" boolean DEFAULT false NOT NULL;