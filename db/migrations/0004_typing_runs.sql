ALTER TABLE "api_keys" ADD COLUMN "key_previous_fingerprint" text;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "key_edit_turns" smallint;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_edit_turns_check" CHECK ("api_keys"."key_edit_turns" between 0 and 2);