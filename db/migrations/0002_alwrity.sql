CREATE TABLE "onboarding_steps" (
	"session_id" integer NOT NULL,
	"step" integer NOT NULL,
	"data" jsonb NOT NULL,
	"completed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "onboarding_steps_pk" PRIMARY KEY("session_id","step"),
	CONSTRAINT "onboarding_steps_step_check" CHECK ("onboarding_steps"."step" between 1 and 6)
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "key_fingerprint" text;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "key_prefix_fingerprint" text;--> statement-breakpoint
ALTER TABLE "onboarding_steps" ADD CONSTRAINT "onboarding_steps_session_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."onboarding_sessions"("id") ON DELETE cascade ON UPDATE no action;