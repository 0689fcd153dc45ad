// Live video from a device through the county's TURN relay: the offer goes to the hub, the hub
// passes it to the device over MQTT and returns the device's answer. Media: device → coturn →
// this browser (relay candidates only; nothing connects to the device).
"use strict";
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  function api(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
      body: JSON.stringify(body || {}), keepalive: !body
    }).then(function (r) {
      if (r.status === 204) return {};
      return r.json().then(function (j) {
        if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }

  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, 5000);  // send what we have after 5 s
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  // start(tile, {device, camera, page, quality, reason, ticket}) → a handle with stop().
  // tile holds a <video> and an element .status for the state line.
  function start(tile, opts) {
    var video = tile.querySelector("video"), status = tile.querySelector(".status");
    var handle = {pc: null, session: null, timer: null, stopped: false, startedAt: performance.now()};
    function say(text, cls) { if (status) { status.textContent = text; status.className = "status " + (cls || ""); } }
    say(tile.dataset.connecting || "连接中… connecting");
    // talk-back: the operator's microphone goes on the connection muted; push-to-talk unmutes it
    // (browsers give the microphone only to secure pages: the console must be on HTTPS to talk)
    var canTalk = opts.talk && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
    if (opts.talk && !canTalk) {
      var ptt = tile.querySelector(".talk");
      if (ptt) { ptt.disabled = true; ptt.title = tile.dataset.noMic || "no microphone (HTTPS needed)"; }
    }
    var mic = canTalk ? navigator.mediaDevices.getUserMedia({audio: true}).catch(function () { return null; })
                      : Promise.resolve(null);
    mic.then(function (stream) {
      handle.mic = stream ? stream.getAudioTracks()[0] : null;
      if (handle.mic) handle.mic.enabled = false;
      return api("/api/v1/devices/" + encodeURIComponent(opts.device) + "/live",
        {camera: opts.camera, page: opts.page || "device", quality: opts.quality || "main",
         reason: opts.reason || null, ticket_id: opts.ticket || null, talk: !!handle.mic});
    })
      .then(function (s) {
        handle.session = s.session;
        if (handle.mic && !s.talk) {  // someone else talks with this pillar: watch and listen only
          handle.mic.stop();
          handle.mic = null;
          var ptt = tile.querySelector(".talk");
          if (ptt) { ptt.disabled = true; ptt.title = (tile.dataset.busy || "talking: ") + s.talking.join(", "); }
        }
        var pc = new RTCPeerConnection({iceServers: s.ice_servers, iceTransportPolicy: s.ice_transport_policy});
        handle.pc = pc;
        window.xlLive.sessions.push(handle);
        pc.addTransceiver("video", {direction: "recvonly"});
        if (handle.mic) pc.addTransceiver(handle.mic, {direction: "sendrecv"});
        pc.ontrack = function (ev) {
          if (ev.track.kind === "audio") {  // the pillar's microphone
            handle.remoteAudio = new MediaStream([ev.track]);
            var audio = tile.querySelector("audio") || tile.appendChild(document.createElement("audio"));
            audio.autoplay = true;
            audio.srcObject = handle.remoteAudio;
            audio.play().catch(function () {});
            meter(tile, handle);
            return;
          }
          video.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
          video.play().catch(function () {});
        };
        pc.onconnectionstatechange = function () {
          tile.dataset.state = pc.connectionState;
          if (pc.connectionState === "connected") say(tile.dataset.live || "直播中 live", "good");
          if (pc.connectionState === "failed") say(tile.dataset.failed || "连接失败 failed", "bad");
        };
        video.addEventListener("loadeddata", function () {
          tile.dataset.firstFrameMs = Math.round(performance.now() - handle.startedAt);
        }, {once: true});
        handle.timer = setInterval(function () {
          api("/api/v1/live/" + s.session + "/keepalive", {}).catch(function () {});
        }, s.keepalive_s * 1000);
        return pc.createOffer().then(function (o) { return pc.setLocalDescription(o); })
          .then(function () { return gathered(pc); })
          .then(function () { return api("/api/v1/live/" + s.session + "/offer", {sdp: pc.localDescription.sdp}); })
          .then(function (ans) { return pc.setRemoteDescription({type: "answer", sdp: ans.sdp}); });
      })
      .catch(function (err) { say(String(err.message || err), "bad"); tile.dataset.state = "refused"; stop(handle); });
    return handle;
  }

  // the loudest frequency and level of the scene's sound (the tile's level meter shows the level)
  function audioPeak(handle) {
    if (!handle.analyser) return null;
    var a = handle.analyser, bins = new Float32Array(a.frequencyBinCount);
    a.getFloatFrequencyData(bins);
    var best = 0;
    for (var i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return {hz: best * handle.audioContext.sampleRate / a.fftSize, db: bins[best]};
  }

  function meter(tile, handle) {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    handle.audioContext = new Ctx();
    handle.analyser = handle.audioContext.createAnalyser();
    handle.analyser.fftSize = 4096;
    handle.audioContext.createMediaStreamSource(handle.remoteAudio).connect(handle.analyser);
    handle.audioContext.resume().catch(function () {});
    var level = tile.querySelector(".level");
    handle.meterTimer = setInterval(function () {
      var p = audioPeak(handle);
      if (level && p) level.style.width = Math.max(0, Math.min(100, (p.db + 100) * 1.5)) + "%";
    }, 200);
  }

  function stop(handle) {
    if (handle.stopped) return;
    handle.stopped = true;
    if (handle.timer) clearInterval(handle.timer);
    if (handle.meterTimer) clearInterval(handle.meterTimer);
    if (handle.audioContext) handle.audioContext.close().catch(function () {});
    if (handle.mic) handle.mic.stop();
    if (handle.pc) handle.pc.close();
    if (handle.session) api("/api/v1/live/" + handle.session + "/close").catch(function () {});
    var i = window.xlLive.sessions.indexOf(handle);
    if (i >= 0) window.xlLive.sessions.splice(i, 1);
  }

  // the selected candidate pair of a session: {local, remote} candidate types (relay expected)
  function selectedPair(handle) {
    return handle.pc.getStats().then(function (stats) {
      var pair = null, byId = {};
      stats.forEach(function (r) { byId[r.id] = r; });
      stats.forEach(function (r) {
        if (r.type === "transport" && r.selectedCandidatePairId) pair = byId[r.selectedCandidatePairId];
      });
      if (!pair) stats.forEach(function (r) { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
      if (!pair) return null;
      var l = byId[pair.localCandidateId], rm = byId[pair.remoteCandidateId];
      return {local: l && l.candidateType, remote: rm && rm.candidateType, relayAddress: l && l.address,
              relayProtocol: l && l.relayProtocol, bytesReceived: pair.bytesReceived};
    });
  }

  window.addEventListener("pagehide", function () {
    window.xlLive.sessions.slice().forEach(stop);
  });

  window.xlLive = {start: start, stop: stop, selectedPair: selectedPair, audioPeak: audioPeak, sessions: []};

  // tiles with controls (play / stop / reason) and tiles that start on their own
  function wire(tile) {
    function opts() {
      var reason = tile.querySelector(".reason");
      return {device: tile.dataset.device, camera: tile.dataset.camera, page: tile.dataset.page || "device",
              ticket: tile.dataset.ticket ? +tile.dataset.ticket : null, reason: reason ? reason.value : null,
              talk: !!tile.dataset.talk};
    }
    var play = tile.querySelector(".play"), halt = tile.querySelector(".stop"), ptt = tile.querySelector(".talk");
    if (ptt) {  // push-to-talk: held down, the operator is heard on the pillar's speaker
      var on = function (yes) {
        return function (ev) {
          ev.preventDefault();
          if (tile.handle && tile.handle.mic) tile.handle.mic.enabled = yes;
          tile.dataset.talking = yes ? "1" : "";
        };
      };
      ptt.addEventListener("pointerdown", on(true));
      ["pointerup", "pointerleave", "pointercancel"].forEach(function (e) { ptt.addEventListener(e, on(false)); });
    }
    if (play) play.onclick = function () { if (tile.handle) stop(tile.handle); tile.handle = start(tile, opts()); };
    if (halt) halt.onclick = function () { if (tile.handle) { stop(tile.handle); tile.handle = null; } };
    if (tile.dataset.autostart) tile.handle = start(tile, opts());
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".tile[data-page]").forEach(wire);
  });
})();
