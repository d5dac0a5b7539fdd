/**
 * Reads a `text/event-stream` response with a standard parser (`eventsource-parser`), one
 * event at a time, so a test can stop (cancel the reader) after a few events as a client
 * that goes away would.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { generationEvents, type GenerationEventName } from "../../lib/generation/schemas.js";

export interface ParsedEvent {
  event: string;
  data: any;
}

export class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private readonly queue: EventSourceMessage[] = [];
  private readonly parser = createParser({
    onEvent: (message) => this.queue.push(message),
    onComment: () => {
      this.comments += 1;
    },
    onError: (error) => {
      throw error;
    },
  });
  private ended = false;
  /** Every byte received, for "this never appears in the stream" assertions. */
  raw = "";
  /** Comments (`: keep-alive`) seen so far. */
  comments = 0;

  constructor(response: Response) {
    if (!response.body) throw new Error("the response has no body");
    this.reader = response.body.getReader();
  }

  /** The next event, or undefined once the stream ended. */
  async next(): Promise<ParsedEvent | undefined> {
    while (this.queue.length === 0) {
      if (this.ended) return undefined;
      const { done, value } = await this.reader.read();
      if (done) {
        this.ended = true;
        this.parser.reset({ consume: true });
        continue;
      }
      const text = this.decoder.decode(value, { stream: true });
      this.raw += text;
      this.parser.feed(text);
    }
    const message = this.queue.shift()!;
    if (message.event === undefined) throw new Error(`an event without a name: ${message.data}`);
    return { event: message.event, data: JSON.parse(message.data) };
  }

  /** Reads until `predicate` matches (inclusive); throws if the stream ends first. */
  async until(predicate: (event: ParsedEvent) => boolean): Promise<ParsedEvent[]> {
    const seen: ParsedEvent[] = [];
    for (;;) {
      const event = await this.next();
      if (!event) throw new Error(`the stream ended before the expected event; got ${seen.map((e) => e.event).join(",")}`);
      seen.push(event);
      if (predicate(event)) return seen;
    }
  }

  /** Every remaining event. */
  async all(): Promise<ParsedEvent[]> {
    const events: ParsedEvent[] = [];
    for (let event = await this.next(); event; event = await this.next()) events.push(event);
    return events;
  }

  /** The client going away: cancels the body stream. */
  cancel(): Promise<void> {
    return this.reader.cancel();
  }
}

/** Reads a whole event stream. */
export async function readEvents(response: Response): Promise<{ events: ParsedEvent[]; raw: string }> {
  const reader = new SseReader(response);
  const events = await reader.all();
  return { events, raw: reader.raw };
}

/** Validates every event's data against its schema in `generationEvents`; throws naming the event. */
export function validateGenerationEvents(events: ParsedEvent[]): void {
  for (const [index, event] of events.entries()) {
    if (!(event.event in generationEvents)) throw new Error(`event ${index} has an undocumented name "${event.event}"`);
    const result = generationEvents[event.event as GenerationEventName].safeParse(event.data);
    if (!result.success) {
      throw new Error(`event ${index} (${event.event}) does not match its schema: ${result.error.message}\n${JSON.stringify(event.data)}`);
    }
  }
}
