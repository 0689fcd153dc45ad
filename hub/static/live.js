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
    api("/api/v1/devices/" + encodeURIComponent(opts.device) + "/live",
        {camera: opts.camera, page: opts.page || "device", quality: opts.quality || "main",
         reason: opts.reason || null, ticket_id: opts.ticket || null})
      .then(function (s) {
        handle.session = s.session;
        var pc = new RTCPeerConnection({iceServers: s.ice_servers, iceTransportPolicy: s.ice_transport_policy});
        handle.pc = pc;
        window.xlLive.sessions.push(handle);
        pc.addTransceiver("video", {direction: "recvonly"});
        pc.ontrack = function (ev) {
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

  function stop(handle) {
    if (handle.stopped) return;
    handle.stopped = true;
    if (handle.timer) clearInterval(handle.timer);
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

  window.xlLive = {start: start, stop: stop, selectedPair: selectedPair, sessions: []};

  // tiles with controls (play / stop / reason) and tiles that start on their own
  function wire(tile) {
    function opts() {
      var reason = tile.querySelector(".reason");
      return {device: tile.dataset.device, camera: tile.dataset.camera, page: tile.dataset.page || "device",
              ticket: tile.dataset.ticket ? +tile.dataset.ticket : null, reason: reason ? reason.value : null};
    }
    var play = tile.querySelector(".play"), halt = tile.querySelector(".stop");
    if (play) play.onclick = function () { if (tile.handle) stop(tile.handle); tile.handle = start(tile, opts()); };
    if (halt) halt.onclick = function () { if (tile.handle) { stop(tile.handle); tile.handle = null; } };
    if (tile.dataset.autostart) tile.handle = start(tile, opts());
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".tile[data-page]").forEach(wire);
  });
})();
