// emscripten/library_neuron.js: the wasm boundary, JS side.
//
// Linked into the module with --js-library and exposed as Module.boundary.
// It is the only JS that touches wasm memory or knows the tape format of
// bindings.cpp (read the table there). web/src/ sees only:
//
//   boundary.hot(core)                                the hot path of one Core:
//     .streamBytes(now, streamId, chunk)              chunk: Uint8Array, copied
//                                                     straight into wasm memory
//     .streamFrame / .postResult / .handlerReturned / .timeout
//                                                     strings go in with
//                                                     TextEncoder.encodeInto;
//                                                     each returns the tape
//   boundary.play(tape, sink)                         calls sink's methods in the
//                                                     tape's order; returns
//                                                     [code, message] if the
//                                                     command failed, else null
//   boundary.liveHandles()                            embind/emval handles alive
//
// The sink (web/src/neuron.js) implements: open, registered, close, reconnecting,
// error, frame, log, startSettled, stopSettled, openStream, closeStream, post,
// abortPost, startHandler, abortHandler, deadline, and failedRecord(err) (a
// record threw: reported, the rest of the tape still plays).

mergeInto(LibraryManager.library, {
  // bindings.cpp calls this once at start-up; it only pulls $NeuronBoundary in.
  neuron_boundary_link__deps: ['$NeuronBoundary'],
  neuron_boundary_link: function () {},

  $NeuronBoundary__postset: "Module['boundary'] = NeuronBoundary;",
  $NeuronBoundary__deps: ['neuron_input_buffer', 'neuron_stream_bytes', 'neuron_stream_frame',
                          'neuron_post_result', 'neuron_handler_returned', 'neuron_timeout'],
  $NeuronBoundary: {
    // The hot path for one Core (embind object): raw calls, no marshalling.
    hot: function (core) {
      var addr = core.address();
      // Made here, at run time: library-level values are serialised at build time.
      var decoder = new TextDecoder();
      var encoder = new TextEncoder();
      // The tape a raw entry point left at `ptr`: [u32 length][UTF-8 bytes].
      function tapeAt(ptr) {
        var len = HEAPU32[ptr >> 2];
        return decoder.decode(HEAPU8.subarray(ptr + 4, ptr + 4 + len));
      }
      // Copy a JS string into the core's input buffer; returns its byte length.
      function putString(str) {
        var max = str.length * 3;
        var ptr = _neuron_input_buffer(addr, max);
        return encoder.encodeInto(str, HEAPU8.subarray(ptr, ptr + max)).written;
      }
      return {
        streamBytes: function (now, streamId, chunk) {
          var ptr = _neuron_input_buffer(addr, chunk.length);
          HEAPU8.set(chunk, ptr); // after the call: it may have grown memory
          return tapeAt(_neuron_stream_bytes(addr, now, streamId, chunk.length));
        },
        streamFrame: function (now, streamId, json) {
          var n = putString(json);
          return tapeAt(_neuron_stream_frame(addr, now, streamId, n));
        },
        postResult: function (now, requestId, status, body) {
          var n = body ? putString(body) : 0;
          return tapeAt(_neuron_post_result(addr, now, requestId, status, n));
        },
        handlerReturned: function (now, handlerId, json) {
          var n = putString(json);
          return tapeAt(_neuron_handler_returned(addr, now, handlerId, n));
        },
        timeout: function (now) {
          return tapeAt(_neuron_timeout(addr, now));
        },
      };
    },

    play: function (tape, sink) {
      var failed = null;
      if (tape === '') return null;
      var records = tape.split('\x1e');
      for (var i = 0; i < records.length; i++) {
        // Every record is played, whatever an earlier one threw: a record
        // skipped would be a handler never started or a POST never sent.
        try {
          var f = NeuronBoundary.play1(records[i], sink);
          if (f) failed = f;
        } catch (err) {
          sink.failedRecord(err);
        }
      }
      return failed;
    },

    // One record; returns [code, message] for the '!' (command failed) record.
    play1: function (r, sink) {
      // 'T' (the deadline) is the most common record: it ends every tape.
      if (r.charCodeAt(0) === 84 /* T */) {
        sink.deadline(r.length > 2 ? +r.slice(2) : -1);
        return null;
      }
      var f = r.split('\x1f');
      switch (f[0]) {
        case 'H': sink.startHandler(+f[1], +f[2], f[3], f[4]); break;
        case 'P': sink.post(+f[1], f[2], f[3]); break;
        case 'o': sink.open(); break;
        case 'r': sink.registered(f[1], +f[2]); break;
        case 'c': sink.close(f[1]); break;
        case 'n': sink.reconnecting(+f[1], +f[2], f[3]); break;
        case 'e': sink.error(f[1], f[2], +f[3]); break;
        case 'f': sink.frame(f[1]); break;
        case 'l': sink.log(+f[1], f[2], f[3]); break;
        case 's': sink.startSettled(f[1], f[2], +f[3]); break;
        case 'S': sink.stopSettled(); break;
        case 'O': sink.openStream(+f[1], f[2]); break;
        case 'C': sink.closeStream(+f[1]); break;
        case 'A': sink.abortPost(+f[1]); break;
        case 'X': sink.abortHandler(+f[1], f[2]); break;
        case '!': return [f[1], f[2]];
        default: throw new Error('neuron-sdk internal error: unknown tape record ' + JSON.stringify(f[0]));
      }
      return null;
    },

    liveHandles: function () {
      return Module['count_emval_handles'] ? Module['count_emval_handles']() : 0;
    },
  },
});
