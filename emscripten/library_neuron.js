// emscripten/library_neuron.js: the wasm boundary, JS side.
//
// Linked into the module with --js-library and exposed as Module['boundary'].
// It is the only JS that touches wasm memory or knows the inbox and tape
// formats of bindings.cpp (read the tables there). web/src/ sees only:
//
//   var port = boundary['port'](core)     the hot path of one Core
//     .bytes(streamId, chunk)             inbox: stream bytes (copied now)
//     .frame(streamId, json)              inbox: one frame as JSON text
//     .lease(streamId, hostRef, hasTask, leaseId, taskId, type, inputJson, inputVouched)
//                                         inbox: a lease given as fields (and
//                                         whether the host checked its input)
//     .result(requestId, status, body)    inbox: a POST's answer
//     .released(requestId)                inbox: its connection is free again
//                                         (Node: options.releasesPosts)
//     .returned(handlerId, json, flags)
//                                         inbox: a handler's output; flags:
//                                         1 the host keeps it for the first
//                                         ack it builds, 2 for every attempt
//                                         until releaseOutput (json is ''),
//                                         4 the host checked it against the
//                                         capability's outputSchema, 8 with
//                                         2: the host kept its JSON and
//                                         writes the ack's JSON itself
//                                         (postHostJson)
//     .waiting()                          bytes in the inbox not yet flushed
//     .flush(now)                         the core takes the inbox: a tape
//     .timeout(now)                       the core's timer fired: a tape
//     .tape(header)                       the tape an embind command returned
//   boundary['play'](tape, sink)          calls sink's methods in the tape's
//                                         order
//   boundary['failed'](tape)              [code, message] if the tape is a
//                                         refused command's, else null
//   boundary['schemaUrl']()               where neuron-schema.wasm is, by default
//
// A tape is { r: Float64Array (a copy of the records), t: the texts }: it
// outlives the next call into the core, so a sink may call in while playing.
// The sink (web/src/host.js) implements: deadline, startHandler, post,
// postHostAck, postHostJson, abortPost, abortHandler, openStream, closeStream, releaseTask, releaseOutput,
// open, registered, close, reconnecting, error, frame, log, startSettled,
// stopSettled, and failedRecord(err) (a record threw: reported, the rest of
// the tape still plays).
//
// Names are published quoted (x['name']): closure renames everything else
// (and the boundary's own are listed in $NeuronBoundary__postset).

mergeInto(LibraryManager.library, {
  // embind registers every builtin type at start-up (bind.cpp). The core's
  // bindings take and return only numbers, booleans and std::string, so the
  // JS of the other three (std::wstring's UTF-16/32 codecs, typed-array
  // views, emscripten::val handles) is never used: these no-ops keep it out
  // of the glue (-2.4 KB raw, -0.8 KB gzip). A binding that used one of
  // these types would throw "unbound type" when called (bindings.test.js
  // calls every binding).
  _embind_register_std_wstring__deps: [],
  _embind_register_std_wstring: function () {},
  _embind_register_memory_view__deps: [],
  _embind_register_memory_view: function () {},
  _embind_register_emval__deps: [],
  _embind_register_emval: function () {},

  // bindings.cpp calls this once at start-up; it only pulls $NeuronBoundary in.
  neuron_boundary_link__deps: ['$NeuronBoundary'],
  neuron_boundary_link: function () {},

  // The JSON Schema validator (schema_bridge.cpp): neuron-schema.wasm, which
  // web/src/schema.js loads and sets as Module['schema']. JSON texts cross as
  // bytes; a call's answer text waits in NeuronBoundary.schemaText.
  neuron_schema_compile__deps: ['$NeuronBoundary'],
  neuron_schema_compile: function (ptr, len) {
    var r = NeuronBoundary.validator()['compile'](HEAPU8.subarray(ptr, ptr + len));
    NeuronBoundary.schemaText = r[1];
    return r[0];
  },
  neuron_schema_validate__deps: ['$NeuronBoundary'],
  neuron_schema_validate: function (schema, ptr, len) {
    var errors = NeuronBoundary.validator()['validate'](schema, HEAPU8.subarray(ptr, ptr + len));
    NeuronBoundary.schemaText = errors;
    return errors === null ? -1 : errors.length;
  },
  neuron_schema_text_length__deps: ['$NeuronBoundary'],
  neuron_schema_text_length: function () {
    return NeuronBoundary.schemaText ? NeuronBoundary.schemaText.length : 0;
  },
  neuron_schema_text__deps: ['$NeuronBoundary'],
  neuron_schema_text: function (out) {
    if (NeuronBoundary.schemaText) HEAPU8.set(NeuronBoundary.schemaText, out);
    NeuronBoundary.schemaText = null;
  },
  neuron_schema_release: function (schema) {
    var v = Module['schema'];
    if (v) v['release'](schema);
  },

  // Emscripten writes the library object's keys unquoted, so closure would
  // rename them: the public names are given here, quoted.
  $NeuronBoundary__postset: "Module['boundary'] = {'port': NeuronBoundary.port, 'play': NeuronBoundary.play, " +
    "'failed': NeuronBoundary.failed, 'schemaUrl': NeuronBoundary.schemaUrl};",
  $NeuronBoundary__deps: ['neuron_inbox', 'neuron_flush', 'neuron_timeout'],
  $NeuronBoundary: {
    'port': function (core) {
      var addr = core['address']();
      // Made here, at run time: library-level values are serialised at build time.
      var decoder = new TextDecoder();
      var encoder = new TextEncoder();
      var noTexts = [];
      var cap = 0;   // inbox capacity, bytes
      var base = 0;  // inbox address (8-aligned)
      var used = 0;  // bytes written (a multiple of 8 between records)

      function reserve(n) {
        if (used + n <= cap) return;
        cap = Math.max(cap * 2, used + n, 4096);
        base = _neuron_inbox(addr, cap);  // keeps what is written; may grow memory (HEAP* follow)
      }
      function f64(v) {
        HEAPF64[(base + used) >> 3] = v;
        used += 8;
      }
      function align() {
        used = (used + 7) & ~7;
      }
      // Writes `s` as UTF-8 at the end of the inbox, returns its byte length
      // (not counted in `used` yet). ASCII is copied here up to 512
      // characters (a TextEncoder call costs about as much as copying 500
      // characters in Chromium); TextEncoder writes the rest, from the first
      // non-ASCII character on. Room is made for one byte a character first
      // (most text is ASCII), then for what the rest needs.
      function str(s) {
        var n = s.length;
        reserve(n + 8);
        var at = base + used;
        var i = 0;
        if (n <= 512) {
          for (; i < n; i++) {
            var c = s.charCodeAt(i);
            if (c > 127) break;
            HEAPU8[at + i] = c;
          }
          if (i === n) return n;
        }
        var r = encoder.encodeInto(i ? s.slice(i) : s, HEAPU8.subarray(at + i, at + n));
        var written = i + r.written;
        if (i + r.read < n) {
          var rest = s.slice(i + r.read);
          reserve(written + rest.length * 3 + 8);
          at = base + used;
          written += encoder.encodeInto(rest, HEAPU8.subarray(at + written, at + written + rest.length * 3)).written;
        }
        return written;
      }
      // A record of op, id, [flag,] byte length, then the bytes of `s`.
      function text(op, id, flag, s) {
        reserve(32);
        f64(op);
        f64(id);
        if (flag !== null) f64(flag);
        var slot = used;
        used += 8;
        var n = str(s);
        HEAPF64[(base + slot) >> 3] = n;  // `base` as it is after str(): it may have moved
        used += n;
        align();
      }
      function tape(header) {
        var p = header >> 2;
        var rp = HEAPU32[p] >> 3;
        var rn = HEAPU32[p + 1];
        var tp = HEAPU32[p + 2];
        var tn = HEAPU32[p + 3];
        base = HEAPU32[p + 4];  // the core may have given a big inbox back
        cap = HEAPU32[p + 5];
        return {
          r: HEAPF64.slice(rp, rp + rn),
          t: tn ? decoder.decode(HEAPU8.subarray(tp, tp + tn)).split('\x1f') : noTexts,
        };
      }
      return {
        'bytes': function (streamId, chunk) {
          var n = chunk.length;
          reserve(24 + n + 8);
          f64(1);
          f64(streamId);
          f64(n);
          HEAPU8.set(chunk, base + used);
          used += n;
          align();
        },
        'frame': function (streamId, json) {
          text(2, streamId, null, json);
        },
        'lease': function (streamId, hostRef, hasTask, leaseId, taskId, type, inputJson, inputVouched) {
          reserve(64);
          var head = used;  // op, streamId, hostRef, flags, four lengths
          used += 64;
          var n1 = str(leaseId);
          used += n1;
          var n2 = str(taskId);
          used += n2;
          var n3 = str(type);
          used += n3;
          var n4 = inputJson === null ? 0 : str(inputJson);
          used += n4;
          align();
          var h = (base + head) >> 3;
          HEAPF64[h] = 3;
          HEAPF64[h + 1] = streamId;
          HEAPF64[h + 2] = hostRef;
          HEAPF64[h + 3] = (hasTask ? 1 : 0) | (inputJson === null ? 0 : 2) | (inputVouched ? 4 : 0);
          HEAPF64[h + 4] = n1;
          HEAPF64[h + 5] = n2;
          HEAPF64[h + 6] = n3;
          HEAPF64[h + 7] = n4;
        },
        'result': function (requestId, status, body) {
          text(4, requestId, status, body);
        },
        'released': function (requestId) {
          reserve(16);
          f64(6);
          f64(requestId);
        },
        'returned': function (handlerId, json, flags) {
          text(5, handlerId, flags, json);
        },
        'waiting': function () {
          return used;
        },
        'flush': function (now) {
          var n = used;
          used = 0;
          return tape(_neuron_flush(addr, now, n));
        },
        'timeout': function (now) {
          return tape(_neuron_timeout(addr, now));
        },
        'tape': tape,
      };
    },

    'play': function (tape, sink) {
      var r = tape.r;
      var t = tape.t;
      var failed = null;
      var i = 0;
      while (i < r.length) {
        var at = i;
        var op = r[i];
        i += NeuronBoundary.lengths[op] || r.length;  // an unknown op ends the tape
        // Every record is played, whatever an earlier one threw: a record
        // skipped would be a handler never started or a POST never sent.
        try {
          switch (op) {
            case 1: sink['deadline'](r[at + 1]); break;
            case 2: sink['startHandler'](r[at + 1], r[at + 2], r[at + 3] < 0 ? null : t[r[at + 3]], r[at + 4] < 0 ? null : t[r[at + 4]], r[at + 5], r[at + 6] < 0 ? null : t[r[at + 6]]); break;
            case 3: sink['post'](r[at + 1], NeuronBoundary.paths[r[at + 2]], t[r[at + 3]], r[at + 4], r[at + 5] === 1); break;
            case 4: sink['postHostAck'](r[at + 1], r[at + 2], r[at + 3], r[at + 4], r[at + 5]); break;
            case 5: sink['abortPost'](r[at + 1]); break;
            case 6: sink['abortHandler'](r[at + 1], NeuronBoundary.reasons[r[at + 2]]); break;
            case 7: sink['openStream'](r[at + 1], t[r[at + 2]]); break;
            case 8: sink['closeStream'](r[at + 1]); break;
            case 9: sink['releaseTask'](r[at + 1]); break;
            case 10: sink['releaseOutput'](r[at + 1]); break;
            case 11: sink['postHostJson'](r[at + 1], r[at + 2], r[at + 3], r[at + 4], r[at + 5], t[r[at + 6]], t[r[at + 7]]); break;
            case 20: sink['open'](); break;
            case 21: sink['registered'](t[r[at + 1]], r[at + 2]); break;
            case 22: sink['close'](t[r[at + 1]]); break;
            case 23: sink['reconnecting'](r[at + 1], r[at + 2], t[r[at + 3]]); break;
            case 24: sink['error'](t[r[at + 1]], t[r[at + 2]], r[at + 3]); break;
            case 25: sink['frame'](r[at + 1] < 0 ? null : t[r[at + 1]], r[at + 2]); break;
            case 26: sink['log'](r[at + 1], t[r[at + 2]], t[r[at + 3]]); break;
            case 27: sink['startSettled'](t[r[at + 1]], t[r[at + 2]], r[at + 3]); break;
            case 28: sink['stopSettled'](); break;
            case 30: failed = [t[r[at + 1]], t[r[at + 2]]]; break;
            default: throw new Error('neuron-sdk internal error: unknown tape record ' + op);
          }
        } catch (err) {
          sink['failedRecord'](err);
        }
      }
      return failed;
    },

    // [code, message] when the tape is a refused command's, else null.
    'failed': function (tape) {
      return tape.r[0] === 30 ? [tape.t[tape.r[1]], tape.t[tape.r[2]]] : null;
    },

    // Record lengths by op (the op included), as bindings.cpp writes them.
    lengths: [0, 2, 7, 6, 6, 2, 3, 3, 2, 2, 2, 8, 0, 0, 0, 0, 0, 0, 0, 0,
              1, 3, 2, 4, 4, 3, 4, 4, 1, 0, 3],
    paths: ['/neuron/register', '/neuron/update-capability', '/neuron/heartbeat', '/neuron/ack', '/neuron/nack',
            '/neuron/progress'],
    reasons: ['cancelled', 'capability revoked', 'shutting down', 'lease lost'],

    // Where neuron-schema.wasm is when nobody said otherwise: next to this
    // glue (a bundler that copies neuron-core.wasm sees this URL too).
    'schemaUrl': function () {
      return new URL('neuron-schema.wasm', import.meta.url).toString();
    },

    validator: function () {
      var v = Module['schema'];
      if (!v) throw new Error('neuron-sdk internal error: the JSON Schema validator is not loaded');
      return v;
    },
    schemaText: null,

  },
});
