/** The Settle payment gateway's Node client. */
export { createSettleClient, SettleApiError, unwrap, type ApiErrorBody, type Payment, type Refund, type Schemas, type SettleClient, type SettleClientOptions, type SettleEvent, type WebhookEndpoint } from './client.js';
export { verifyWebhook, WebhookSignatureError, type VerifyWebhookOptions, type WebhookEvent, type WebhookEventType } from './webhooks.js';
export type { components, paths, webhooks } from './schema.js';
