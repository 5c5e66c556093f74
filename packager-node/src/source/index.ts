/** Public surface of the encoder-pool live source. */
export {
  defaultFixtureDir,
  describeFixture,
  describeRendition,
  type Fixture,
  FixtureError,
  type FixtureManifest,
  type FixturePart,
  type FixturePartManifest,
  type FixtureRendition,
  type FixtureRenditionManifest,
  type FixtureTrackManifest,
  loadFixture,
  type RenditionInput,
  sha256Hex,
} from "./fixture.ts";
