/**
 * The parts of Adyen's Node library (`@adyen/api-library`) the connector uses, each loaded from
 * its own module. The package's root loads the models of every Adyen API (over a second of CPU,
 * paid by every gateway and CLI start, Adyen account or not); the client, the Checkout service
 * and the HMAC validator load in a fifth of that. The package has no export map: these are the
 * published CommonJS modules (lib/src) its root re-exports. Types still come from the root (they
 * are erased at run time).
 */
// CommonJS modules: each one's `export default` is read from the module object
import clientModule from '@adyen/api-library/lib/src/client.js';
import configModule from '@adyen/api-library/lib/src/config.js';
import exceptionModule from '@adyen/api-library/lib/src/httpClient/httpClientException.js';
import checkoutModule from '@adyen/api-library/lib/src/services/checkout/index.js';
import hmacModule from '@adyen/api-library/lib/src/utils/hmacValidator.js';

export const Client = clientModule.default;
export const EnvironmentEnum = configModule.EnvironmentEnum;
export const HttpClientException = exceptionModule.default;
export const CheckoutAPI = checkoutModule.default;
export const hmacValidator = hmacModule.default;
