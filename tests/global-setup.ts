/** Says up front which databases the suite runs on, so a skipped PostgreSQL suite is never silent. */
export default function setup(): void {
  if (process.env.TEST_DATABASE_URL) {
    process.stdout.write("database suites: PGlite and PostgreSQL (TEST_DATABASE_URL is set)\n");
  } else {
    process.stdout.write(
      "database suites: PGlite only; the PostgreSQL suites are SKIPPED because TEST_DATABASE_URL is not set " +
        "(e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm test)\n",
    );
  }
}
