// This person's camera, microphone and screen in a live class: what the browser captures, the self view, and
// switching each on and off within what the room allows (Participant.may_publish). Each track is handed to the
// MediaLink, which carries it to the relay.

export const KINDS = ['microphone', 'camera', 'screen'];

export class LocalMedia {
  constructor({ link = null, onChange = () => {} }) {
    this.tracks = new Map(); // kind -> MediaStreamTrack
    this.onChange = onChange;
    this.link = link;
    this.stream = new MediaStream();
  }

  isOn(kind) {
    return this.tracks.has(kind);
  }

  async toggle(kind) {
    if (this.isOn(kind)) this.stop(kind);
    else await this.start(kind);
  }

  async start(kind) {
    let track;
    if (kind === 'screen') {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      [track] = stream.getVideoTracks();
    } else {
      const stream = await navigator.mediaDevices.getUserMedia(kind === 'camera' ? { video: true } : { audio: true });
      [track] = kind === 'camera' ? stream.getVideoTracks() : stream.getAudioTracks();
    }
    track.addEventListener('ended', () => this.stop(kind));
    this.tracks.set(kind, track);
    if (kind !== 'microphone') this.stream.addTrack(track);
    this.link?.publish(kind, track);
    this.onChange();
  }

  stop(kind) {
    const track = this.tracks.get(kind);
    if (!track) return;
    this.tracks.delete(kind);
    track.stop();
    if (kind !== 'microphone') this.stream.removeTrack(track);
    this.link?.unpublish(kind);
    this.onChange();
  }

  /** Switch off whatever the room no longer allows (a teacher muted us, or revoked a permission). */
  enforce(allowed) {
    for (const kind of [...this.tracks.keys()]) if (!allowed.has(kind)) this.stop(kind);
  }

  /** The video track to show in the self view: the screen while sharing, else the camera. */
  get selfVideo() {
    return this.tracks.get('screen') ?? this.tracks.get('camera') ?? null;
  }

  close() {
    for (const kind of [...this.tracks.keys()]) this.stop(kind);
  }
}
