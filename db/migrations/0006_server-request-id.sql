ALTER TABLE "key_events" ADD COLUMN "server_request_id" text;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "server_request_id" text;