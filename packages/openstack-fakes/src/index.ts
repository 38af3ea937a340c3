/*
 * @nmp/openstack-fakes: a fake Keystone v3 + Neutron ports API that speaks the real wire protocol, for
 * tests and benchmarks of the metadata agent's Neutron resolver.
 */
export {
  createFakeOpenStack,
  type FakeCounts,
  type FakeFailure,
  type FakeOpenStack,
  type FakeOpenStackOptions,
  type FakeService,
} from './fake-openstack.js';
export {
  type EndpointInterface,
  FAKE_DEFAULTS,
  type FakeApplicationCredential,
  type FakeDomain,
  type FakeProject,
  type FakeUser,
} from './keystone.js';
export { type FakePort, type PortQuery, parsePortQuery } from './neutron-ports.js';
export {
  fakeUuid,
  type GeneratedInstance,
  type GeneratedTopology,
  type GenerateOptions,
  generatePorts,
} from './port-generator.js';
export { TEST_CA_CERT, TEST_SERVER_CERT, TEST_SERVER_KEY } from './test-tls.js';
