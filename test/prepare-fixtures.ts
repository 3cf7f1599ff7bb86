// Makes the fixtures remaster.test uses, when missing: run by test/run.ts in the background while
// the files before remaster.test run. Prints nothing when they are there already.
import { remasterFixtures } from './fixtures.ts';

await remasterFixtures();
