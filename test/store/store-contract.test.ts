import { createTestDatabase, storesUnderTest } from "../support/databases.js";
import { testStoreContract } from "../support/store-contract.js";

// One suite per store selected by TESSERA_TEST_STORES; unreachable servers skip, except on CI.
for (const { kind, skip } of await storesUnderTest()) {
  testStoreContract(kind, () => createTestDatabase(kind), { skip });
}
