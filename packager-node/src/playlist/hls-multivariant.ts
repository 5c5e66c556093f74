/**
 * HLS multivariant playlist writer. Pure; URIs are relative to
 * /live/{streamId}/master.m3u8 so every replica writes the same text.
 *
 * Video renditions become EXT-X-STREAM-INF variants; audio renditions become
 * an EXT-X-MEDIA audio group that every video variant references (when there
 * is no video, each audio rendition is its own variant). The `steering` hook
 * adds EXT-X-CONTENT-STEERING and PATHWAY-ID for HLS Content Steering.
 */
import type { MultivariantInput, RenditionInfo } from "./model.ts";

export const AUDIO_GROUP_ID = "audio";

function quoted(v: string): string {
  // rfc8216bis quoted-string: no double quote, CR or LF inside.
  return `"${v.replace(/["\r\n]/g, "")}"`;
}

export function formatFrameRate(fps: number): string {
  return fps.toFixed(3);
}

export function writeMultivariantPlaylist(input: MultivariantInput): string {
  const video = input.renditions.filter((r) => r.kind === "video");
  const audio = input.renditions.filter((r) => r.kind === "audio");
  const lines: string[] = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  if (input.steering) {
    lines.push(
      `#EXT-X-CONTENT-STEERING:SERVER-URI=${quoted(input.steering.serverUri)},PATHWAY-ID=${quoted(input.steering.pathwayId)}`,
    );
  }
  const pathway = input.steering ? `,PATHWAY-ID=${quoted(input.steering.pathwayId)}` : "";
  const grouped = video.length > 0 && audio.length > 0;
  if (grouped) {
    audio.forEach((a, i) => {
      let line = `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=${quoted(AUDIO_GROUP_ID)},NAME=${quoted(a.name ?? a.id)}`;
      if (a.language) line += `,LANGUAGE=${quoted(a.language)}`;
      line += `,DEFAULT=${i === 0 ? "YES" : "NO"},AUTOSELECT=YES,URI=${quoted(`${a.id}/index.m3u8`)}`;
      lines.push(line);
    });
  }
  const audioPeak = Math.max(0, ...audio.map((a) => a.bandwidth));
  const audioAvg = Math.max(0, ...audio.map((a) => a.averageBandwidth ?? a.bandwidth));
  const audioCodecs = [...new Set(audio.map((a) => a.codecs))];
  const variants: RenditionInfo[] = video.length > 0 ? video : audio;
  for (const v of variants) {
    const codecs = grouped ? [v.codecs, ...audioCodecs] : [v.codecs];
    let line = `#EXT-X-STREAM-INF:BANDWIDTH=${v.bandwidth + (grouped ? audioPeak : 0)}`;
    if (v.averageBandwidth !== undefined) {
      line += `,AVERAGE-BANDWIDTH=${v.averageBandwidth + (grouped ? audioAvg : 0)}`;
    }
    line += `,CODECS=${quoted(codecs.join(","))}`;
    if (v.resolution) line += `,RESOLUTION=${v.resolution}`;
    if (v.frameRate !== undefined) line += `,FRAME-RATE=${formatFrameRate(v.frameRate)}`;
    if (grouped) line += `,AUDIO=${quoted(AUDIO_GROUP_ID)}`;
    line += pathway;
    lines.push(line);
    lines.push(`${v.id}/index.m3u8`);
  }
  return `${lines.join("\n")}\n`;
}
