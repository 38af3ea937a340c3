/*
 * @nmp/openstack-fakes: a fake Keystone v3 + Neutron ports API that speaks the real wire protocol, for
 * tests and benchmarks of the metadata agent's Neutron resolver.
 */
export { createFakeOpenStack, type FakeOpenStackOptions } from './fake-openstack.js';
export { type EndpointInterface, FAKE_DEFAULTS, fakeNeutronResolverArgs } from './keystone.js';
export type { FakePort } from './neutron-ports.js';
export { generatePorts } from './port-generator.js';
export { TEST_CA_CERT, TEST_SERVER_CERT, TEST_SERVER_KEY } from './test-tls.js';
