export {
  type ConformanceOptions,
  describeSessionStoreConformance,
  type OpenStore,
  type StoreUnderTest,
} from './conformance/index.js';
