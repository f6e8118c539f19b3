// The Herald console: wires the page to the signed API (api.js) and the WebRTC call (call.js).
// State lives in `state`; every change goes through render(), which sets texts and enables buttons.

import { ApiError, AUTH_CODES, HeraldApi } from './api.js';
import { AGENT_STATES, CallSession, MESSAGE_NAMES, MessageType } from './call.js';
import { cryptoAvailable, importSecret } from './sign.js';

const LOG_LIMIT = 300;
/** Lines kept in the transcript (the user's and the agent's). */
const SUBTITLE_LIMIT = 50;
/** After a subtitle starts an utterance, an audio onset this soon after it is taken as its first audio. */
const ONSET_WINDOW_MS = 1500;
const STORE = {
  keyId: 'herald.console.accessKeyId',
  agent: 'herald.console.agentId',
  voice: 'herald.console.voiceId',
};

const $ = (id) => document.getElementById(id);

const storage = {
  get(name) {
    try {
      return localStorage.getItem(name);
    } catch {
      return null; // storage disabled: nothing remembered
    }
  },
  set(name, value) {
    try {
      localStorage.setItem(name, value);
    } catch {
      // storage disabled or full: not remembering is fine
    }
  },
};

const state = {
  endpoint: location.origin,
  api: null, // HeraldApi once a key pair is accepted
  keyState: 'none', // none | checking | ready
  call: null, // GenerateAIAgentCall's answer, plus AIAgentId
  instanceStatus: '', // Created | Executing | Finished
  session: null, // CallSession
  sessionInfo: null, // the session as the server described it (GET on its Location)
  sessionState: 'none', // none | connecting | joined | left | failed
  sessionDetail: '',
  channelOpen: false,
  busy: new Set(), // actions in flight: create, stop, describe, voice
  agentState: null,
  voiceConfirmed: null, // the voice the agent last announced (1005)
  voiceInterrupt: null, // whether the user's voice may cut the agent: its AgentConfig, then its 1004s
  voiceInterruptFrom: '', // '' (not known) | config | agent (a 1004)
  voiceInterruptAsked: null, // the 1102 sent and not answered yet (by a 1004, or a 1000 refusing it)
  transcript: [], // {who: user | agent, id, text, done, cut, typed, at}, oldest first
  typedTurns: 0,
  utterances: [],
  pendingOutcomes: new Map(), // requestId → 1900 data that came before the API answer
  lastOnsetAt: -Infinity,
  awaitingOnset: null, // {utterance, until}
};

// ---------------------------------------------------------------------------------------------- helpers

function wallClock(perfMs) {
  const d = new Date(performance.timeOrigin + perfMs);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function describeError(err) {
  if (err instanceof ApiError) return err.describe();
  return `${err.name ?? 'Error'}: ${err.message ?? String(err)}`;
}

function showError(slot, err) {
  const node = $(slot);
  node.replaceChildren();
  if (err === null) {
    node.hidden = true;
    return;
  }
  node.append(el('strong', { text: err instanceof ApiError ? err.code : err.name ?? 'Error' }));
  node.append(`: ${err.message}`);
  if (err instanceof ApiError && err.requestId) {
    node.append(el('span', { class: 'reqid', text: ` RequestId ${err.requestId}` }));
  }
  if (err instanceof ApiError && err.recommend) {
    node.append(el('span', { class: 'reqid', text: ` ${err.recommend}` }));
  }
  node.hidden = false;
}

function log(kind, title, detail = '', at = performance.now()) {
  const list = $('log');
  const item = el(
    'li',
    { class: `log-${kind}` },
    el('time', { text: wallClock(at) }),
    el('span', { class: 'log-title', text: title }),
    detail ? el('code', { text: detail }) : null,
  );
  list.prepend(item);
  while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
}

/** Call an action and log it; an auth failure also tells, by the key, that the key was refused. */
async function api(action, params) {
  if (!state.api) throw new ApiError({ code: 'NoKey', message: 'enter an access key pair first', action });
  try {
    const body = await state.api.call(action, params);
    log('api', `${action} ✓`, `RequestId ${body.RequestId}`);
    return body;
  } catch (err) {
    log('error', `${action} ✗`, describeError(err) + (err.requestId ? ` (RequestId ${err.requestId})` : ''));
    if (err instanceof ApiError && AUTH_CODES.has(err.code) && err.code !== 'SignatureNonceUsed') {
      $('key-status').textContent =
        `The server refused the key: ${err.code}. Check the key pair and this machine's clock.`;
    }
    throw err;
  }
}

async function busy(name, work) {
  state.busy.add(name);
  render();
  try {
    return await work();
  } finally {
    state.busy.delete(name);
    render();
  }
}

// ---------------------------------------------------------------------------------------------- the key

async function useKey(event) {
  event.preventDefault();
  const idField = $('access-key-id');
  const secretField = $('access-key-secret');
  const accessKeyId = idField.value.trim();
  let secret = secretField.value;
  secretField.value = ''; // the string is dropped at once; only the CryptoKey below is kept
  showError('key-error', null);
  if (!accessKeyId || !secret) {
    secret = '';
    const message = 'enter both the AccessKeyId and the AccessKeySecret';
    showError('key-error', new ApiError({ code: 'MissingParameter', message }));
    return;
  }
  state.keyState = 'checking';
  state.api = null;
  render();
  let key;
  try {
    key = await importSecret(secret);
  } catch (err) {
    state.keyState = 'none';
    showError('key-error', err);
    render();
    return;
  } finally {
    secret = '';
  }
  const candidate = new HeraldApi({ endpoint: state.endpoint, accessKeyId, key });
  try {
    // A cheap signed request proves the pair before anything else uses it.
    const agentId = $('agent-id').value.trim() || 'default';
    await candidate.call('ListAIAgentInstance', { AIAgentId: agentId, PageSize: '1' });
  } catch (err) {
    state.keyState = 'none';
    log('error', 'Key check ✗', describeError(err));
    showError('key-error', err);
    $('key-status').textContent = AUTH_CODES.has(err.code)
      ? 'The server refused this key pair.'
      : 'The key could not be checked.';
    render();
    return;
  }
  state.api = candidate;
  state.keyState = 'ready';
  storage.set(STORE.keyId, accessKeyId);
  $('key-status').textContent = `Signing as ${accessKeyId}: the server accepted the key.`;
  log('api', 'Key accepted', accessKeyId);
  render();
}

function forgetKey() {
  state.api = null; // the CryptoKey is unreachable from now on
  state.keyState = 'none';
  $('access-key-secret').value = '';
  $('key-status').textContent = 'Key forgotten. Enter a key pair to sign requests again.';
  showError('key-error', null);
  log('info', 'Key forgotten');
  render();
}

// ---------------------------------------------------------------------------------------------- the call

function resetCallView() {
  state.agentState = null;
  state.voiceConfirmed = null;
  $('voice-status').textContent = '';
  state.voiceInterrupt = null;
  state.voiceInterruptFrom = '';
  state.voiceInterruptAsked = null;
  state.transcript = [];
  state.typedTurns = 0;
  state.utterances = [];
  state.pendingOutcomes.clear();
  state.awaitingOnset = null;
  state.lastOnsetAt = -Infinity;
  renderSubtitles();
  renderUtterances();
}

async function createCall(event) {
  event.preventDefault();
  showError('call-error', null);
  const agentId = $('agent-id').value.trim() || 'default';
  await busy('create', async () => {
    try {
      const body = await api('GenerateAIAgentCall', { AIAgentId: agentId });
      storage.set(STORE.agent, agentId);
      if (state.session) state.session = null;
      state.call = { ...body, AIAgentId: agentId };
      state.instanceStatus = 'Created';
      state.sessionState = 'none';
      state.sessionDetail = '';
      resetCallView();
      $('call-status').textContent = `Call created for agent ${agentId}. Join it to hear the agent.`;
    } catch (err) {
      showError('call-error', err);
    }
  });
}

async function join() {
  if (!state.call) return;
  showError('call-error', null);
  const session = new CallSession({
    endpoint: state.endpoint,
    channelId: state.call.ChannelId,
    token: state.call.Token,
    audio: $('remote-audio'),
  });
  state.session = session;
  state.sessionInfo = null;
  session.addEventListener('state', (e) => {
    if (state.session !== session) return;
    state.sessionState = e.detail.state;
    state.sessionDetail = e.detail.reason;
    if (e.detail.state !== 'joined') state.channelOpen = false;
    log('info', `You: ${e.detail.state}`, e.detail.reason);
    render();
  });
  session.addEventListener('channel', (e) => {
    if (state.session !== session) return;
    state.channelOpen = e.detail.state === 'open';
    log('info', `Data channel ${e.detail.state}`);
    if (state.channelOpen) session.sendMessage(MessageType.QUERY_STATE);
    render();
  });
  session.addEventListener('notice', (e) => log('info', 'Notice', e.detail.text));
  session.addEventListener('message', (e) => onMessage(e.detail));
  session.addEventListener('energy', (e) => onEnergy(e.detail.at));
  try {
    await session.join({ microphone: $('use-mic').checked });
    if (session.state === 'joined') {
      $('call-status').textContent = session.listenOnly
        ? 'Joined, listening only (no microphone).'
        : 'Joined with your microphone.';
      refreshStatus();
    }
  } catch (err) {
    showError('call-error', err);
  }
}

async function leave() {
  const session = state.session;
  if (!session) return;
  showError('call-error', null);
  try {
    await session.leave();
    $('call-status').textContent = 'You left the call; the agent is still in it until the instance stops.';
  } catch (err) {
    showError('call-error', err);
  }
  render();
}

async function refreshStatus() {
  if (!state.call || !state.api) return;
  const instanceId = state.call.InstanceId;
  const session = state.session;
  await busy('describe', async () => {
    try {
      const body = await api('DescribeAIAgentInstance', { InstanceId: instanceId });
      if (state.call?.InstanceId === instanceId) {
        state.instanceStatus = body.Instance?.Status ?? state.instanceStatus;
        if (state.voiceInterruptFrom !== 'agent') {
          const configured = body.Instance?.AgentConfig?.InterruptConfig?.EnableVoiceInterrupt;
          state.voiceInterrupt = configured !== false; // on unless the agent's config turns it off
          state.voiceInterruptFrom = 'config';
        }
      }
    } catch (err) {
      showError('call-error', err);
    }
    if (session && session.state === 'joined' && session === state.session) {
      try {
        state.sessionInfo = await session.describe();
      } catch (err) {
        state.sessionInfo = null;
        showError('call-error', err);
      }
    }
  });
}

function describeSessionInfo(info, listenOnly) {
  if (!info) return '—';
  const mic = info.Microphone ?? {};
  let microphone = 'no microphone audio yet';
  if (mic.Frames) {
    const seconds = Number(mic.Seconds ?? 0).toFixed(1);
    microphone = `microphone ${mic.Frames} frames (${seconds} s, level ${Math.round(mic.Rms ?? 0)})`;
  } else if (listenOnly) {
    microphone = 'listening only';
  }
  return `${info.ConnectionState}, data channel ${info.DataChannel}, ${microphone}`;
}

async function stopInstance() {
  if (!state.call) return;
  showError('call-error', null);
  const instanceId = state.call.InstanceId;
  await busy('stop', async () => {
    try {
      // Leave first, so the session is closed by us (DELETE) and not cut under us.
      if (state.session?.active) await state.session.leave().catch((err) => showError('call-error', err));
      await api('StopAIAgentInstance', { InstanceId: instanceId });
      if (state.call?.InstanceId === instanceId) state.instanceStatus = 'Finished';
      $('call-status').textContent = 'The instance is stopped. Create a new call to start again.';
    } catch (err) {
      showError('call-error', err);
    }
  });
  await refreshStatus();
}

// ---------------------------------------------------------------------------------------------- messages

function onMessage(message) {
  const { type, data, receivedAt } = message;
  const name = MESSAGE_NAMES[type] ?? 'message';
  log(type === MessageType.ERROR ? 'error' : 'msg', `${type} ${name}`, JSON.stringify(data), receivedAt);
  switch (type) {
    case MessageType.AGENT_STATE:
      state.agentState = data.state;
      if (data.state === 3) onSpeakingStarted(receivedAt);
      break;
    case MessageType.SUBTITLE:
      onSubtitle(data, receivedAt);
      break;
    case MessageType.USER_SUBTITLE:
      onUserSubtitle(data, receivedAt);
      break;
    case MessageType.VOICE_INTERRUPT:
      state.voiceInterrupt = data.enable === true;
      state.voiceInterruptFrom = 'agent';
      state.voiceInterruptAsked = null;
      break;
    case MessageType.SPEECH_OUTCOME:
      onOutcome(data, receivedAt);
      break;
    case MessageType.ERROR:
      onAgentError(data);
      break;
    case MessageType.VOICE_CHANGED:
      state.voiceConfirmed = data.voiceId;
      $('voice-status').textContent = `The agent's voice is now ${data.voiceId} (from the next utterance).`;
      break;
    case MessageType.INTERRUPTED:
      cutSubtitles();
      break;
    case MessageType.AGENT_LEAVING:
      cutSubtitles();
      state.instanceStatus = 'Finished';
      $('call-status').textContent = `The agent is leaving: ${data.message || `reason ${data.reason}`}.`;
      state.session?.ended(`the agent left (${data.message || `reason ${data.reason}`})`);
      break;
    default:
      break;
  }
  render();
}

function normalise(text) {
  return String(text ?? '').replace(/\s+/g, ' ').trim().toLowerCase();
}

/** Utterances pushed but not yet heard, oldest first. */
function waitingUtterances() {
  return state.utterances.filter((u) => u.firstAudioAt === null && !u.outcome && u.state !== 'rejected');
}

function addLine(who, id, text, done, at, typed = false) {
  state.transcript.push({ who, id, text, done, cut: false, typed, at });
  while (state.transcript.length > SUBTITLE_LIMIT) state.transcript.shift();
}

function onSubtitle(data, at) {
  if (data.end) {
    const seen = state.transcript.findLast(
      (s) => s.who === 'agent' && s.id === data.sentenceId && s.text === data.text,
    );
    if (seen) seen.done = true;
    else addLine('agent', data.sentenceId, data.text, true, at);
  } else {
    addLine('agent', data.sentenceId, data.text, false, at);
    // The utterance this sentence belongs to: the oldest waiting text utterance that contains it.
    const sentence = normalise(data.text);
    const owner = waitingUtterances().find(
      (u) => u.type === 'Text' && sentence && normalise(u.text).includes(sentence),
    );
    if (owner) startUtterance(owner, at, 'subtitle');
  }
  renderSubtitles();
}

/**
 * What the user said (1003): partials (end: false) rewrite their sentence's line as it grows, the final
 * settles it; an empty final closes partials that came to nothing, so their line goes.
 */
function onUserSubtitle(data, at) {
  const text = String(data.text ?? '');
  const index = state.transcript.findLastIndex((s) => s.who === 'user' && s.id === data.sentenceId);
  const line = index >= 0 ? state.transcript[index] : null;
  if (line?.done) return; // settled already: nothing later changes it
  if (data.end && !text) {
    if (line) state.transcript.splice(index, 1);
  } else if (line) {
    line.text = text;
    line.done = Boolean(data.end);
  } else {
    addLine('user', data.sentenceId, text, Boolean(data.end), at);
  }
  renderSubtitles();
}

/** Speech was cut (1016) or the agent left: the agent's sentences still playing will not end. */
function cutSubtitles() {
  for (const s of state.transcript) {
    if (s.who === 'agent' && !s.done) {
      s.done = true;
      s.cut = true;
    }
  }
  renderSubtitles();
}

function onSpeakingStarted(at) {
  // Audio URLs have no subtitle: the agent starting to speak marks the oldest waiting one, if it is first.
  const first = waitingUtterances()[0];
  if (first && first.type === 'AudioUrl' && at >= first.sentAt) startUtterance(first, at, 'state');
}

function onEnergy(at) {
  state.lastOnsetAt = at;
  const waiting = state.awaitingOnset;
  if (waiting && at <= waiting.until) {
    waiting.utterance.firstAudioAt = at;
    waiting.utterance.firstAudioHow = 'heard';
    state.awaitingOnset = null;
    renderUtterances();
  }
}

function startUtterance(utterance, at, how) {
  // An onset heard just before the message (the data channel can lag the audio) counts as the start.
  if (state.lastOnsetAt >= Math.max(utterance.sentAt, at - 150) && state.lastOnsetAt <= at) {
    utterance.firstAudioAt = state.lastOnsetAt;
    utterance.firstAudioHow = 'heard';
  } else {
    utterance.firstAudioAt = at;
    utterance.firstAudioHow = how;
    state.awaitingOnset = { utterance, until: at + ONSET_WINDOW_MS };
  }
  renderUtterances();
}

function applyOutcome(utterance, data, at) {
  utterance.outcome = data.state;
  utterance.playedMs = data.playedMs;
  utterance.heardText = data.heardText ?? '';
  utterance.reason = data.reason ?? utterance.reason ?? '';
  utterance.outcomeAt = at;
  if (state.awaitingOnset?.utterance === utterance) state.awaitingOnset = null;
}

function onOutcome(data, at) {
  const utterance = state.utterances.find((u) => u.requestId === data.requestId);
  if (utterance) applyOutcome(utterance, data, at);
  // Kept only while a push awaits its answer: the agent's own answers (LLM replies, prompts) have
  // outcomes no push will ever claim.
  else if (data.requestId && state.utterances.some((u) => u.state === 'sending')) {
    state.pendingOutcomes.set(data.requestId, { data, at });
  }
  renderUtterances();
}

function onAgentError(data) {
  const utterance = data.requestId ? state.utterances.find((u) => u.requestId === data.requestId) : null;
  if (utterance) {
    utterance.reason = `${data.code}: ${data.message}`;
    renderUtterances();
  } else {
    // An error while a 1102 awaits its 1004 is taken as its refusal: the checkbox shows what holds.
    state.voiceInterruptAsked = null;
    showError('call-error', new ApiError({ code: data.code ?? 'AgentError', message: data.message ?? '' }));
  }
}

// ---------------------------------------------------------------------------------------------- speech

function speechType() {
  return document.querySelector('input[name="speech-type"]:checked').value;
}

async function sendSpeech(event) {
  event.preventDefault();
  showError('speech-error', null);
  if (!state.call) return;
  const text = $('speech-text').value.trim();
  if (!text) {
    const message = 'write a text or an audio URL to say';
    showError('speech-error', new ApiError({ code: 'MissingParameter', message }));
    return;
  }
  const type = speechType();
  const interrupt = document.querySelector('input[name="speech-policy"]:checked').value === 'true';
  const utterance = {
    n: state.utterances.length + 1,
    type,
    text,
    interrupt,
    state: 'sending',
    sentAt: performance.now(),
    acceptedAt: null,
    requestId: '',
    firstAudioAt: null,
    firstAudioHow: '',
    outcome: '',
    playedMs: null,
    heardText: '',
    reason: '',
  };
  state.utterances.push(utterance);
  renderUtterances();
  try {
    const body = await api('SendAIAgentSpeech', {
      InstanceId: state.call.InstanceId,
      Text: text,
      Type: type,
      EnableInterrupt: interrupt ? 'true' : 'false',
    });
    utterance.state = 'accepted';
    utterance.acceptedAt = performance.now();
    utterance.requestId = body.RequestId;
    const early = state.pendingOutcomes.get(body.RequestId);
    if (early) {
      state.pendingOutcomes.delete(body.RequestId);
      applyOutcome(utterance, early.data, early.at);
    }
  } catch (err) {
    utterance.state = 'rejected';
    utterance.acceptedAt = performance.now();
    utterance.requestId = err.requestId ?? '';
    utterance.reason = describeError(err);
    showError('speech-error', err);
  }
  renderUtterances();
}

function interruptNow() {
  if (state.session?.sendMessage(MessageType.INTERRUPT)) log('info', '1101 interrupt sent');
}

// ---------------------------------------------------------------------------------------------- conversation

/** "Say as the user": 1111, a user turn as text that the agent's LLM answers (no LLM: 1000 NoLlm). */
function sendUserText(event) {
  event.preventDefault();
  showError('call-error', null);
  const field = $('user-text');
  const text = field.value.trim();
  if (!text) return;
  if (!state.session?.sendMessage(MessageType.USER_TEXT, { text })) return;
  log('info', '1111 user text sent', text);
  state.typedTurns += 1;
  addLine('user', `typed-${state.typedTurns}`, text, true, performance.now(), true);
  field.value = '';
  renderSubtitles();
}

/** The checkbox asks the agent (1102); it shows what was asked until the agent's 1004 (or a 1000). */
function askVoiceInterrupt() {
  const enable = $('voice-interrupt').checked;
  showError('call-error', null);
  if (state.session?.sendMessage(MessageType.ENABLE_VOICE_INTERRUPT, { enable })) {
    state.voiceInterruptAsked = enable;
    log('info', '1102 enable voice interrupt sent', JSON.stringify({ enable }));
  }
  render();
}

async function updateVoice(event) {
  event.preventDefault();
  showError('voice-error', null);
  if (!state.call) return;
  const voiceId = $('voice-id').value.trim();
  if (!voiceId) {
    showError('voice-error', new ApiError({ code: 'MissingParameter', message: 'choose a VoiceId' }));
    return;
  }
  await busy('voice', async () => {
    try {
      await api('UpdateAIAgentInstance', {
        InstanceId: state.call.InstanceId,
        AgentConfig: JSON.stringify({ TtsConfig: { VoiceId: voiceId } }),
      });
      storage.set(STORE.voice, voiceId);
      // The agent's 1005 may have come first (the data channel can beat the HTTP answer): keep it.
      if (state.voiceConfirmed !== voiceId) {
        $('voice-status').textContent = `Voice set to ${voiceId}: the next utterance uses it.`;
      }
    } catch (err) {
      showError('voice-error', err);
    }
  });
}

// ---------------------------------------------------------------------------------------------- render

const SESSION_LABELS = {
  none: 'not joined',
  connecting: 'connecting',
  joined: 'joined',
  left: 'left',
  failed: 'failed',
};
const SESSION_TONES = { none: 'muted', connecting: 'busy', joined: 'good', left: 'muted', failed: 'bad' };
const KEY_LABELS = { none: 'no key', checking: 'checking…' };
const KEY_TONES = { none: 'muted', checking: 'busy', ready: 'good' };
const STATUS_TONES = { Created: 'busy', Executing: 'good', Finished: 'muted' };
const OUTCOME_TONES = { finished: 'good', interrupted: 'warn', dropped: 'muted', failed: 'bad' };
const AGENT_TONES = { speaking: 'good', thinking: 'busy', listening: 'info' };
const VOICE_INTERRUPT_NOTES = { '': '', config: 'as configured', agent: 'confirmed by the agent' };

function badge(text, tone) {
  return el('span', { class: 'badge', 'data-tone': tone, text });
}

function setBadge(id, text, tone) {
  const node = $(id);
  node.textContent = text;
  node.dataset.tone = tone;
}

const SPEAKERS = { user: 'You', agent: 'Agent' };

/** speaking (the agent) or partial (the user) while in progress; done once settled; cut if interrupted. */
function lineState(s) {
  if (s.cut) return 'cut';
  if (s.done) return 'done';
  return s.who === 'user' ? 'partial' : 'speaking';
}

function renderSubtitles() {
  const line = (s) => {
    const cut = s.cut ? el('span', { class: 'cut-mark', text: ' (cut)' }) : null;
    return el('span', { class: lineState(s), text: s.text }, cut);
  };
  const who = (s) => el('span', { class: `who who-${s.who}`, text: SPEAKERS[s.who] });
  const list = $('subtitles');
  // Oldest first, like a chat: a reader at the end follows new lines, one scrolled back stays put.
  const following = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.replaceChildren(
    ...state.transcript.map((s) =>
      el(
        'li',
        { class: `from-${s.who}`, 'data-who': s.who, 'data-state': lineState(s) },
        el('time', { text: wallClock(s.at) }),
        who(s),
        line(s),
        s.typed ? el('span', { class: 'tag', text: 'typed' }) : null,
      ),
    ),
  );
  if (following) list.scrollTop = list.scrollHeight;
  const current = state.transcript.findLast((s) => !s.done) ?? state.transcript.at(-1);
  const now = $('subtitle-now');
  if (current) now.replaceChildren(who(current), line(current));
  else now.replaceChildren(el('span', { class: 'muted', text: 'Subtitles appear here while you or the agent speak.' }));
}

function outcomeCell(u) {
  if (u.state === 'rejected') {
    return el('td', {}, badge('rejected', 'bad'), el('div', { class: 'small', text: u.reason }));
  }
  if (!u.outcome) return el('td', {}, badge(u.firstAudioAt === null ? 'waiting' : 'playing', 'busy'));
  const details = [];
  if (u.playedMs !== null && u.playedMs !== undefined) details.push(`${(u.playedMs / 1000).toFixed(2)} s played`);
  if (u.reason) details.push(u.reason);
  const detail = details.length ? el('div', { class: 'small', text: details.join(' · ') }) : null;
  return el('td', {}, badge(u.outcome, OUTCOME_TONES[u.outcome] ?? 'muted'), detail);
}

function renderUtterances() {
  const body = $('utterances').tBodies[0];
  body.replaceChildren(
    ...state.utterances
      .slice()
      .reverse()
      .map((u) => {
        const accepted =
          u.state === 'sending'
            ? el('td', { class: 'muted', text: 'sending…' })
            : el(
                'td',
                {},
                el('div', { text: `${wallClock(u.acceptedAt)} (${Math.round(u.acceptedAt - u.sentAt)} ms)` }),
                u.requestId ? el('div', { class: 'mono small', text: u.requestId }) : null,
              );
        const first =
          u.firstAudioAt === null
            ? el('td', { class: 'muted', text: '—' })
            : el(
                'td',
                {},
                el('div', { text: `+${Math.round(u.firstAudioAt - u.sentAt)} ms` }),
                el('div', { class: 'small muted', text: `${wallClock(u.firstAudioAt)} · ${u.firstAudioHow}` }),
              );
        return el(
          'tr',
          { 'data-n': String(u.n), 'data-request-id': u.requestId, 'data-outcome': u.outcome || u.state },
          el('td', { text: String(u.n) }),
          el(
            'td',
            { class: 'speech-text' },
            u.type === 'AudioUrl' ? el('span', { class: 'tag', text: 'URL' }) : null,
            el('span', { text: u.text }),
          ),
          el('td', { text: u.interrupt ? 'interrupt' : 'append' }),
          accepted,
          first,
          outcomeCell(u),
          el('td', { class: 'heard', text: u.heardText || '' }),
        );
      }),
  );
  $('utterances-empty').hidden = state.utterances.length > 0;
}

function render() {
  const ready = state.keyState === 'ready';
  const call = state.call;
  const live = Boolean(call) && state.instanceStatus !== 'Finished';
  const sessionActive = state.sessionState === 'connecting' || state.sessionState === 'joined';

  document.body.dataset.keyState = state.keyState;
  document.body.dataset.callState = state.sessionState;
  setBadge('key-badge', KEY_LABELS[state.keyState] ?? state.api?.accessKeyId ?? 'ready', KEY_TONES[state.keyState]);

  $('use-key').disabled = state.keyState === 'checking' || !cryptoAvailable();
  $('forget-key').disabled = state.keyState !== 'ready';

  $('create-call').disabled = !ready || state.busy.has('create') || live || sessionActive;
  $('instance-id').textContent = call?.InstanceId ?? '—';
  $('channel-id').textContent = call?.ChannelId ?? '—';
  $('user-id').textContent = call?.UserId ?? '—';
  const statusTone = STATUS_TONES[state.instanceStatus] ?? 'muted';
  setBadge('instance-status', call ? state.instanceStatus || '—' : '—', statusTone);
  const sessionTone = SESSION_TONES[state.sessionState];
  setBadge('session-state', SESSION_LABELS[state.sessionState], sessionTone);
  $('session-detail').textContent = state.sessionDetail && state.sessionState !== 'joined' ? state.sessionDetail : '';
  $('session-info').textContent =
    state.sessionState === 'joined' ? describeSessionInfo(state.sessionInfo, state.session?.listenOnly) : '—';
  if (!call) setBadge('call-badge', 'no call', 'muted');
  else if (sessionActive) setBadge('call-badge', SESSION_LABELS[state.sessionState], sessionTone);
  else setBadge('call-badge', live ? state.instanceStatus : 'finished', statusTone);

  $('join').disabled = !live || sessionActive;
  $('use-mic').disabled = sessionActive;
  $('leave').disabled = !sessionActive;
  $('describe').disabled = !call || !ready || state.busy.has('describe');
  $('stop').disabled = !live || !ready || state.busy.has('stop');

  $('send-speech').disabled = !live || !ready;
  const talking = state.sessionState === 'joined' && state.channelOpen;
  $('interrupt').disabled = !talking;
  $('send-user-text').disabled = !talking;
  $('voice-interrupt').disabled = !talking;
  $('voice-interrupt').checked = state.voiceInterruptAsked ?? state.voiceInterrupt ?? true;
  $('voice-interrupt-note').textContent =
    state.voiceInterruptAsked === null ? VOICE_INTERRUPT_NOTES[state.voiceInterruptFrom] : 'asking the agent…';
  $('update-voice').disabled = !live || !ready || state.busy.has('voice');
  $('speech-text-label').textContent = speechType() === 'AudioUrl' ? 'Audio URL (http or https)' : 'Text';

  const agent = state.sessionState === 'joined' ? AGENT_STATES[state.agentState] ?? 'unknown' : 'not joined';
  setBadge('agent-state', agent, AGENT_TONES[agent] ?? 'muted');
}

function renderLevel() {
  const session = state.session;
  const level = session && session.state === 'joined' ? session.level : 0;
  // A dB-like scale: -60 dBFS is empty, 0 dBFS full.
  const db = level > 0 ? 20 * Math.log10(level) : -60;
  $('level-bar').style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100)).toFixed(1)}%`;
}

// ---------------------------------------------------------------------------------------------- start

function start() {
  $('endpoint').textContent = state.endpoint;
  const keyId = storage.get(STORE.keyId);
  if (keyId) $('access-key-id').value = keyId;
  const agentId = storage.get(STORE.agent);
  if (agentId) $('agent-id').value = agentId;
  const voiceId = storage.get(STORE.voice);
  if (voiceId) $('voice-id').value = voiceId;

  if (!cryptoAvailable()) {
    const fatal = $('fatal');
    fatal.textContent =
      'This page is not a secure context, so WebCrypto (signing) and the microphone are unavailable. ' +
      'Open the console at http://127.0.0.1 or http://localhost, or serve Herald behind https.';
    fatal.hidden = false;
    $('use-key').disabled = true;
  }

  $('key-form').addEventListener('submit', useKey);
  $('forget-key').addEventListener('click', forgetKey);
  $('call-form').addEventListener('submit', createCall);
  $('join').addEventListener('click', join);
  $('leave').addEventListener('click', leave);
  $('describe').addEventListener('click', () => {
    showError('call-error', null);
    refreshStatus();
  });
  $('stop').addEventListener('click', stopInstance);
  $('speech-form').addEventListener('submit', sendSpeech);
  $('interrupt').addEventListener('click', interruptNow);
  $('user-text-form').addEventListener('submit', sendUserText);
  $('voice-interrupt').addEventListener('change', askVoiceInterrupt);
  $('voice-form').addEventListener('submit', updateVoice);
  $('clear-log').addEventListener('click', () => $('log').replaceChildren());
  for (const radio of document.querySelectorAll('input[name="speech-type"]')) {
    radio.addEventListener('change', render);
  }
  window.addEventListener('pagehide', () => {
    // Leaving the page leaves the call: the DELETE goes out with keepalive.
    const session = state.session;
    if (session?.sessionUrl) {
      const headers = { Authorization: `Bearer ${session.token}` };
      fetch(session.sessionUrl, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
    }
  });
  setInterval(renderLevel, 100);
  render();
  renderUtterances();
}

// For tests and the curious: a read-only view of what the page measured, and one test hook (receive).
window.heraldConsole = Object.freeze({
  get level() {
    return state.session?.level ?? 0;
  },
  get maxLevel() {
    return state.session?.maxLevel ?? 0;
  },
  get keyState() {
    return state.keyState;
  },
  get callState() {
    return state.sessionState;
  },
  get instanceStatus() {
    return state.instanceStatus;
  },
  get agentState() {
    return state.agentState;
  },
  get channelOpen() {
    return state.channelOpen;
  },
  get call() {
    if (!state.call) return null;
    const { InstanceId, ChannelId, UserId } = state.call;
    return { InstanceId, ChannelId, UserId };
  },
  get utterances() {
    return state.utterances.map((u) => ({ ...u }));
  },
  get session() {
    return state.sessionInfo ? { ...state.sessionInfo } : null;
  },
  /** The agent's subtitles (1002). */
  get subtitles() {
    return state.transcript.filter((s) => s.who === 'agent').map((s) => ({ ...s }));
  },
  /** The conversation as shown, oldest first: the user's lines (1003, and texts sent with 1111) and the agent's. */
  get transcript() {
    return state.transcript.map((s) => ({ ...s }));
  },
  get voiceInterrupt() {
    return state.voiceInterrupt;
  },
  /**
   * For tests: handle `message` ({type, data}) as if the agent had sent it over the data channel. It
   * changes only what this page shows; nothing is sent.
   */
  receive(message) {
    onMessage({ ...message, data: message.data ?? {}, receivedAt: performance.now() });
  },
});

start();
