/* Reading the Prometheus text format in tests: testkit's promSample, under the name these tests use. */
export { promSample as sample } from '@nmp/testkit';
