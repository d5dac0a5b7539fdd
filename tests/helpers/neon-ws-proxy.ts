/** The WebSocket-to-TCP stand-in for Neon's proxy lives in testkit/ (the bench uses it too). */
export { startNeonWsProxy, type NeonWsProxy } from "../../testkit/neon-ws-proxy.js";
