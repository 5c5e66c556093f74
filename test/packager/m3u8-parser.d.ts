// Minimal typings for m3u8-parser 7 (the package ships none); only what the tests use.
declare module "m3u8-parser" {
  export class Parser {
    constructor(opts?: { uri?: string });
    on(event: "warn" | "info", listener: (e: { message: string }) => void): void;
    push(chunk: string): void;
    end(): void;
    manifest: {
      targetDuration?: number;
      mediaSequence?: number;
      partTargetDuration?: number;
      serverControl?: Record<string, unknown>;
      preloadHints?: Array<{ type: string; uri: string }>;
      renditionReports?: Array<{ uri: string; lastMsn?: number; lastPart?: number }>;
      segments: Array<{
        uri: string;
        duration: number;
        dateTimeString?: string;
        parts?: Array<{ uri: string; duration: number; independent?: boolean }>;
        map?: { uri: string };
      }>;
      playlists?: Array<{ uri: string; attributes: Record<string, unknown> }>;
      mediaGroups?: Record<string, Record<string, Record<string, { uri?: string }>>>;
      contentSteering?: { serverUri: string; pathwayId?: string };
      preloadSegment?: {
        parts?: Array<{ uri: string; duration: number }>;
        preloadHints?: unknown[];
      };
      skip?: { skippedSegments: number };
    };
  }
}
