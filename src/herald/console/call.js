// Joining a call over WebRTC (docs/webrtc.md): one audio m-line, the "herald" data channel, the offer
// POSTed once ICE gathering is complete, the answer set, DELETE on the session's Location to leave.

import { ApiError, errorFromResponse, send } from './api.js';

/** Data-channel message types (agent → client and client → agent). */
export const MessageType = Object.freeze({
  ERROR: 1000,
  AGENT_STATE: 1001,
  SUBTITLE: 1002,
  USER_SUBTITLE: 1003,
  VOICE_INTERRUPT: 1004,
  VOICE_CHANGED: 1005,
  AGENT_LEAVING: 1010,
  CUSTOM: 1011,
  INTERRUPTED: 1016,
  REPLY_COMPLETE: 1017,
  SPEECH_OUTCOME: 1900,
  STOP_AGENT: 1100,
  INTERRUPT: 1101,
  ENABLE_VOICE_INTERRUPT: 1102,
  SWITCH_VOICE: 1103,
  USER_TEXT: 1111,
  QUERY_STATE: 1119,
});

export const MESSAGE_NAMES = Object.freeze({
  1000: 'error',
  1001: 'agent state',
  1002: 'subtitle',
  1003: 'user subtitle',
  1004: 'voice interrupt',
  1005: 'voice changed',
  1010: 'agent leaving',
  1011: 'custom message',
  1016: 'speech interrupted',
  1017: 'reply complete',
  1900: 'speech outcome',
  1100: 'stop agent',
  1101: 'interrupt',
  1102: 'enable voice interrupt',
  1103: 'switch voice',
  1111: 'user text',
  1119: 'query state',
});

export const AGENT_STATES = Object.freeze({ 1: 'listening', 2: 'thinking', 3: 'speaking' });

const GATHER_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 20000;
const LEVEL_INTERVAL_MS = 20;
/** Remote audio level (RMS, full scale 1.0) above which the agent is taken to be audible. */
export const ENERGY_THRESHOLD = 0.01;

function waitForGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (complete) => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve(complete);
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done(true);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/**
 * One person in one call. Events (all CustomEvent, details in `detail`):
 *   state    {state, reason}     state: idle | connecting | joined | left | failed
 *   message  {type, data, ...}   a data-channel message from the agent (parsed envelope)
 *   notice   {text}              something worth telling the user (e.g. listening only)
 *   energy   {at, level}         the remote audio rose above ENERGY_THRESHOLD after silence
 *   channel  {state}             the data channel opened or closed
 */
export class CallSession extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.endpoint the server's origin
   * @param {string} options.channelId
   * @param {string} options.token the call's join token (GenerateAIAgentCall's Token)
   * @param {HTMLAudioElement} options.audio the element that plays the agent
   */
  constructor({ endpoint, channelId, token, audio }) {
    super();
    this.endpoint = new URL(endpoint).origin;
    this.channelId = channelId;
    this.token = token;
    this.audio = audio;
    this.state = 'idle';
    this.pc = null;
    this.channel = null;
    this.microphone = null;
    this.sessionUrl = null;
    this.sessionId = null;
    this.listenOnly = false;
    this.audioContext = null;
    this.analyser = null;
    this.level = 0;
    this.maxLevel = 0;
    this.audible = false;
    this.lastEnergyAt = 0;
    this.levelTimer = null;
    this.leaving = false;
  }

  get channelOpen() {
    return this.channel !== null && this.channel.readyState === 'open';
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  setState(state, reason = '') {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state, reason });
  }

  /** Join: microphone (optional), offer, POST, answer, connected. Rejects with an ApiError or Error. */
  async join({ microphone = true } = {}) {
    if (this.state !== 'idle') throw new Error(`cannot join from state ${this.state}`);
    this.setState('connecting');
    try {
      await this.startAudioContext();
      if (microphone) await this.openMicrophone();
      else this.listenOnly = true;
      if (this.state !== 'connecting') {
        await this.teardown(); // left while the browser asked for the microphone
        return;
      }
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      if (this.microphone) {
        for (const track of this.microphone.getAudioTracks()) pc.addTrack(track, this.microphone);
      } else {
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
      pc.addEventListener('track', (event) => this.onTrack(event));
      pc.addEventListener('connectionstatechange', () => this.onConnectionState());
      this.channel = pc.createDataChannel('herald', { ordered: true });
      this.channel.addEventListener('open', () => this.emit('channel', { state: 'open' }));
      this.channel.addEventListener('close', () => this.emit('channel', { state: 'closed' }));
      this.channel.addEventListener('message', (event) => this.onMessage(event));

      await pc.setLocalDescription(await pc.createOffer());
      const gathered = await waitForGathering(pc, GATHER_TIMEOUT_MS);
      if (!gathered) {
        this.emit('notice', { text: 'ICE gathering did not complete in 5 s; sending the candidates found so far' });
      }
      if (this.state !== 'connecting') return; // left while gathering

      const url = `${this.endpoint}/v1/calls/${encodeURIComponent(this.channelId)}/webrtc`;
      const response = await send(
        url,
        {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/sdp' },
          body: pc.localDescription.sdp,
        },
        'join',
      );
      if (response.status !== 201) {
        if (response.ok) {
          throw new ApiError({
            code: `HTTP${response.status}`,
            message: `the server answered the offer with ${response.status}, not 201 Created`,
            status: response.status,
            action: 'join',
          });
        }
        throw await errorFromResponse(response, 'join');
      }
      const location = response.headers.get('Location');
      if (!location) {
        throw new ApiError({ code: 'BadResponse', message: 'the answer has no Location header', action: 'join' });
      }
      this.sessionUrl = new URL(location, url).href;
      this.sessionId = response.headers.get('X-Herald-Session-Id') ?? this.sessionUrl.split('/').pop();
      const answer = await response.text();
      if (this.state !== 'connecting') {
        // Left while the offer was on its way: the server made a session we no longer want.
        await this.deleteSession(this.sessionUrl).catch(() => {});
        return;
      }
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await this.waitConnected();
    } catch (err) {
      if (this.state === 'left') return; // the user left while connecting: not a failure
      const reason = err instanceof ApiError ? err.describe() : `${err.name}: ${err.message}`;
      const sessionUrl = this.sessionUrl;
      this.sessionUrl = null;
      if (sessionUrl) await this.deleteSession(sessionUrl).catch(() => {});
      await this.teardown();
      this.setState('failed', reason);
      throw err;
    }
  }

  async startAudioContext() {
    const Context = globalThis.AudioContext ?? globalThis.webkitAudioContext;
    if (!Context) return;
    this.audioContext = new Context();
    try {
      await this.audioContext.resume();
    } catch {
      // Resumed later on a user gesture; the level meter waits until then.
    }
  }

  async openMicrophone() {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.listenOnly = true;
      this.emit('notice', { text: 'no microphone API in this page (not a secure context?): listening only' });
      return;
    }
    try {
      this.microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      this.listenOnly = true;
      this.emit('notice', { text: `microphone not available (${err.name}: ${err.message}): listening only` });
    }
  }

  waitConnected() {
    const pc = this.pc;
    if (pc.connectionState === 'connected') {
      this.setState('joined');
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`the connection was not up within ${CONNECT_TIMEOUT_MS / 1000} s (${pc.connectionState})`));
      }, CONNECT_TIMEOUT_MS);
      const check = () => {
        if (this.state !== 'connecting') {
          cleanup();
          resolve(); // left meanwhile
        } else if (pc.connectionState === 'connected') {
          cleanup();
          this.setState('joined');
          resolve();
        } else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
          cleanup();
          reject(new Error(`the connection ${pc.connectionState} while connecting`));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        pc.removeEventListener('connectionstatechange', check);
        this.removeEventListener('state', check);
      };
      pc.addEventListener('connectionstatechange', check);
      this.addEventListener('state', check);
    });
  }

  onConnectionState() {
    const state = this.pc?.connectionState;
    if (this.state !== 'joined' || this.leaving) return;
    if (state === 'failed' || state === 'closed') {
      this.sessionUrl = null;
      this.teardown();
      this.setState('left', `the connection ${state}`);
    } else if (state === 'disconnected') {
      this.emit('notice', { text: 'the connection is interrupted; waiting for it to recover' });
    }
  }

  onTrack(event) {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    // Chromium decodes remote WebRTC audio only while something consumes the track: play it in the
    // <audio> element and feed the analyser from the same stream.
    this.audio.srcObject = stream;
    this.audio.play().catch((err) => {
      if (err.name === 'AbortError') return; // the call ended before playback started
      const text = `the browser did not start playback (${err.name}); press Play on the audio control`;
      this.emit('notice', { text });
    });
    if (this.audioContext) {
      const source = this.audioContext.createMediaStreamSource(stream);
      this.analyser = this.audioContext.createAnalyser();
      this.analyser.fftSize = 1024;
      source.connect(this.analyser);
      this.startLevelMeter();
    }
  }

  startLevelMeter() {
    const samples = new Float32Array(this.analyser.fftSize);
    let quietSince = performance.now();
    this.levelTimer = setInterval(() => {
      if (!this.analyser) return;
      this.analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const level = Math.sqrt(sum / samples.length);
      const now = performance.now();
      this.level = level;
      if (level > this.maxLevel) this.maxLevel = level;
      if (level >= ENERGY_THRESHOLD) {
        // Energy after at least 100 ms below the threshold is an onset: someone started speaking.
        if (!this.audible && now - quietSince >= 100) this.emit('energy', { at: now, level });
        this.audible = true;
        this.lastEnergyAt = now;
      } else {
        if (this.audible) quietSince = now;
        this.audible = false;
      }
    }, LEVEL_INTERVAL_MS);
  }

  onMessage(event) {
    let message;
    try {
      message = JSON.parse(typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data));
    } catch {
      this.emit('notice', { text: 'the agent sent a data-channel message that is not JSON' });
      return;
    }
    if (!message || typeof message !== 'object' || !Number.isInteger(message.type)) {
      this.emit('notice', { text: 'the agent sent a data-channel message without an integer type' });
      return;
    }
    this.emit('message', { ...message, data: message.data ?? {}, receivedAt: performance.now() });
  }

  /** Send a client → agent message (1100, 1101, 1102, 1103, 1111, 1119). Returns false if the channel is not open. */
  sendMessage(type, data = {}) {
    if (!this.channelOpen) return false;
    this.channel.send(JSON.stringify({ type, data }));
    return true;
  }

  get active() {
    return this.state === 'connecting' || this.state === 'joined';
  }

  /** Leave: DELETE the session (if it was created), then close everything. Rejects if the DELETE failed. */
  async leave() {
    if (!this.active || this.leaving) return;
    this.leaving = true;
    const sessionUrl = this.sessionUrl;
    this.sessionUrl = null;
    let error = null;
    try {
      if (sessionUrl) await this.deleteSession(sessionUrl);
    } catch (err) {
      error = err;
    } finally {
      await this.teardown();
      this.setState('left', 'you left');
      this.leaving = false;
    }
    if (error) throw error;
  }

  async deleteSession(sessionUrl) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const response = await send(sessionUrl, { method: 'DELETE', headers }, 'leave');
    if (!response.ok) throw await errorFromResponse(response, 'leave');
  }

  /** The session as the server sees it (GET on the Location), or null before it exists. */
  async describe() {
    if (!this.sessionUrl) return null;
    const response = await send(this.sessionUrl, { headers: { Authorization: `Bearer ${this.token}` } }, 'session');
    if (!response.ok) throw await errorFromResponse(response, 'session');
    return response.json();
  }

  /** The call ended on the agent's side (1010, or the instance stopped): close without a DELETE. */
  async ended(reason) {
    if (!this.active || this.leaving) return;
    this.sessionUrl = null;
    await this.teardown();
    this.setState('left', reason);
  }

  async teardown() {
    if (this.levelTimer !== null) clearInterval(this.levelTimer);
    this.levelTimer = null;
    this.analyser = null;
    this.level = 0;
    this.audible = false;
    if (this.channel) this.channel.close();
    if (this.pc) this.pc.close();
    this.channel = null;
    this.pc = null;
    if (this.microphone) for (const track of this.microphone.getTracks()) track.stop();
    this.microphone = null;
    if (this.audio) {
      this.audio.pause();
      this.audio.srcObject = null;
    }
    if (this.audioContext) {
      const context = this.audioContext;
      this.audioContext = null;
      try {
        await context.close();
      } catch {
        // already closed
      }
    }
  }
}
