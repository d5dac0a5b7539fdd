/**
 * Server-Sent Events over a fetch body, parsed by `eventsource-parser` (the spec's rules for
 * fields, comments, CRLF and multi-line data; the same parser the tests read streams with).
 */
import { EventSourceParserStream } from "eventsource-parser/stream";

export interface SseMessage {
  event: string;
  data: string;
}

export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const text = body.pipeThrough(new TextDecoderStream() as ReadableWritablePair<string, Uint8Array>);
  const reader = text.pipeThrough(new EventSourceParserStream()).getReader();
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield { event: next.value.event ?? "message", data: next.value.data };
    }
  } finally {
    // Left early (the page cancelled, or an error event ended the stream): stop reading the body.
    if (!done) await reader.cancel().catch(() => undefined);
  }
}
