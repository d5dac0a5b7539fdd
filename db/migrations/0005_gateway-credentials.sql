CREATE TABLE "gateway_calls" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"caller" text NOT NULL,
	"provider" text NOT NULL,
	"operation" text NOT NULL,
	"model" text,
	"request_id" text,
	"outcome" text NOT NULL,
	"upstream_status" integer,
	"cost_usd" numeric(14, 8),
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "service_credentials" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"secret_hash" text NOT NULL,
	"scope" text DEFAULT 'gateway' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "service_credentials_scope_check" CHECK ("service_credentials"."scope" in ('gateway'))
);
--> statement-breakpoint
CREATE INDEX "gateway_calls_user_created_idx" ON "gateway_calls" USING btree ("user_id","created_at");