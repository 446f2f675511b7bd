"""The WebRTC relay: one peer connection per participant, RTP forwarded, never transcoded."""
