/** The local stand-in for Neon's /sql endpoint lives in testkit/ (the bench uses it too). */
export * from "../../testkit/neon-http-endpoint.js";
