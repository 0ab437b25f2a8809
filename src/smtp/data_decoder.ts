/**
 * The DATA dot-reader (RFC 5321 4.5.2): removes dot-stuffing and finds the
 * end-of-data mark `<CRLF>.<CRLF>` across arbitrary chunk boundaries, in one
 * pass with no copying (it emits sub-arrays of the input).
 *
 * Only `<CRLF>.<CRLF>` ends the data: a bare LF never starts a line here, so
 * `<LF>.<CRLF>` cannot end a message early (the SMTP smuggling class of
 * bugs). Bare LFs are flagged so the session can refuse the message.
 *
 * @module
 */

const CR = 13;
const LF = 10;
const DOT = 46;
const CR_BYTES = new Uint8Array([CR]);

const enum State {
  LineStart,
  Mid,
  Cr,
  Dot,
  DotCr,
}

/** Result of feeding one chunk. */
export interface DecodeResult {
  /** Bytes of the chunk consumed; less than its length only when `done`. */
  consumed: number;
  /** Whether the end-of-data mark was found. */
  done: boolean;
}

/** Streaming DATA decoder; one instance per message. */
export class DataDecoder {
  #state: State = State.LineStart;
  #emit: (bytes: Uint8Array) => void;
  #bareLf = false;

  /** @param emit receives the unstuffed message bytes in order */
  constructor(emit: (bytes: Uint8Array) => void) {
    this.#emit = emit;
  }

  /** Whether a bare LF (not preceded by CR) was seen in the data. */
  get sawBareLf(): boolean {
    return this.#bareLf;
  }

  /** Feeds the next chunk of the DATA stream. */
  push(chunk: Uint8Array): DecodeResult {
    let state = this.#state;
    let runStart = 0;
    const emit = this.#emit;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      switch (state) {
        case State.LineStart:
          if (b === DOT) {
            if (i > runStart) emit(chunk.subarray(runStart, i));
            runStart = i + 1;
            state = State.Dot;
          } else if (b === CR) {
            state = State.Cr;
          } else {
            if (b === LF) this.#bareLf = true;
            state = State.Mid;
          }
          break;
        case State.Mid:
          if (b === CR) state = State.Cr;
          else if (b === LF) this.#bareLf = true;
          break;
        case State.Cr:
          if (b === LF) state = State.LineStart;
          else if (b !== CR) state = State.Mid;
          break;
        case State.Dot:
          if (b === CR) {
            // Hold the CR back: it is either part of the end mark or re-emitted.
            runStart = i + 1;
            state = State.DotCr;
          } else {
            if (b === LF) this.#bareLf = true;
            state = State.Mid;
          }
          break;
        case State.DotCr:
          if (b === LF) {
            this.#state = State.LineStart;
            return { consumed: i + 1, done: true };
          }
          emit(CR_BYTES);
          runStart = i;
          state = b === CR ? State.Cr : State.Mid;
          break;
      }
    }
    if (chunk.length > runStart) emit(chunk.subarray(runStart));
    this.#state = state;
    return { consumed: chunk.length, done: false };
  }
}
