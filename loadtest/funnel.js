// funnel.js: the booking funnel at a constant arrival rate. Guests view a hotel, some open
// its booking page (availability for a stay), and a few reserve: 100 : 10 : 1.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e STAFF_TOKEN=... -e GUEST_TOKEN=... \
//          -e DURATION=1m -e RATE=200 loadtest/funnel.js
//
// RATE is hotel views per second; availability reads arrive at RATE/10 and reservations
// at RATE/100 (each its own constant-arrival-rate scenario, so the ratio holds exactly).
// setup() creates HOTELS hotels (default 20) with more rooms than the run can sell.
//
// With -e WEBHOOK_URL=http://HOST:PORT (loadtest/webhook_receiver.py, as loadtest/smoke
// runs it), setup() also subscribes that receiver to every event, a quarter of the guests
// cancel right after booking and staff confirm another quarter, and teardown() checks
// that every committed reservation's events arrived, signed with the endpoint's secret
// and in order per reservation, then deletes the endpoint. RESERVE_RATE sets reservations
// a second (default RATE/100), so a short run books enough to check.
import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { check, fail, sleep } from 'k6';
import {
  BASE_URL, DURATION, RATE, createHotel, booking, guest, staff, must, uuid, isProblem, day,
  reservationsOf,
} from './lib.js';

// 409 sold_out (and request_in_progress) are answers the API promises under load, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const HOTELS = Number(__ENV.HOTELS || 20);
const WEBHOOK_URL = (__ENV.WEBHOOK_URL || '').replace(/\/$/, '');
const RESERVE_RATE = Number(__ENV.RESERVE_RATE || 0);
// How long teardown() waits for the last events to arrive.
const DELIVERY_DEADLINE_S = 60;
const vus = (rate) => Math.max(2, Math.ceil(rate / 5));

function step(exec, rate, timeUnit) {
  return {
    executor: 'constant-arrival-rate', exec, rate, timeUnit, duration: DURATION,
    preAllocatedVUs: vus(rate), maxVUs: vus(rate) * 10,
  };
}

export const options = {
  scenarios: {
    view_hotel: step('viewHotel', RATE, '1s'),
    booking_page: step('bookingPage', RATE, '10s'),
    reserve: RESERVE_RATE ? step('reserve', RESERVE_RATE, '1s') : step('reserve', RATE, '100s'),
  },
  teardownTimeout: `${DELIVERY_DEADLINE_S + 30}s`,
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{scenario:view_hotel}': ['p(95)<500'],
    'http_req_duration{scenario:booking_page}': ['p(95)<500'],
    'http_req_duration{scenario:reserve}': ['p(95)<1000'],
    // Every webhook check must hold, however many request checks pass around them.
    ...(WEBHOOK_URL ? { 'checks{webhooks:yes}': ['rate==1'] } : {}),
  },
};

export function setup() {
  const run = uuid().slice(0, 8);
  const hotels = [];
  for (let i = 0; i < HOTELS; i++) {
    hotels.push(createHotel(`Funnel ${run} #${i}`, 1000, 1, 91));
  }
  if (!WEBHOOK_URL) return { hotels };
  const endpoint = must(
    http.post(`${BASE_URL}/v1/webhook-endpoints`, JSON.stringify({ url: `${WEBHOOK_URL}/hook` }), staff()),
    201,
    'subscribe the webhook receiver',
  );
  return { hotels, endpoint: { id: endpoint.id, secret: endpoint.secret } };
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
// A stay of 1 to 3 nights inside the 90 nights every hotel has.
function stay() {
  const nights = 1 + Math.floor(Math.random() * 3);
  return { checkIn: 1 + Math.floor(Math.random() * (90 - nights)), nights };
}

export function viewHotel(data) {
  const hotel = pick(data.hotels);
  const res = http.get(`${BASE_URL}/v1/hotels/${hotel.hotel_id}`, { tags: { name: 'GET /v1/hotels/{id}' } });
  check(res, { 'hotel 200': (r) => r.status === 200 });
}

export function bookingPage(data) {
  const hotel = pick(data.hotels);
  const { checkIn, nights } = stay();
  const res = http.get(
    `${BASE_URL}/v1/hotels/${hotel.hotel_id}/availability?check_in=${day(checkIn)}&check_out=${day(checkIn + nights)}&rooms=1`,
    { tags: { name: 'GET /v1/hotels/{id}/availability' } },
  );
  check(res, { 'availability 200': (r) => r.status === 200 });
}

export function reserve(data) {
  const hotel = pick(data.hotels);
  const { checkIn, nights } = stay();
  const res = http.post(`${BASE_URL}/v1/reservations`, booking(uuid(), hotel, checkIn, nights),
    guest({ name: 'POST /v1/reservations' }));
  check(res, { 'reserved or sold out': (r) => r.status === 201 || isProblem(r, 'sold_out') });
  if (!data.endpoint || res.status !== 201) return;
  // More status changes for the webhook check: some guests cancel, staff confirm others.
  const id = res.json('reservation_id');
  const change = Math.random();
  if (change < 0.25) {
    const canceled = http.post(`${BASE_URL}/v1/reservations/${id}/cancel`, '{}',
      guest({ name: 'POST /v1/reservations/{id}/cancel' }));
    check(canceled, { 'canceled': (r) => r.status === 200 });
  } else if (change < 0.5) {
    const confirmed = http.post(`${BASE_URL}/v1/reservations/${id}/confirm`, '{}',
      Object.assign(staff(), { tags: { name: 'POST /v1/reservations/{id}/confirm' } }));
    check(confirmed, { 'confirmed': (r) => r.status === 200 });
  }
}

/** Whether a delivery carries a Standard Webhooks signature made with `secret`. */
function signed(delivery, secret) {
  const key = encoding.b64decode(secret.replace(/^whsec_/, ''));
  const expected = crypto.hmac('sha256', key, `${delivery.id}.${delivery.timestamp}.${delivery.body}`, 'base64');
  return (delivery.signature || '').split(' ').includes(`v1,${expected}`);
}

/**
 * What the receiver heard of each reservation of `hotelIds`: the types of its events in
 * the order they first arrived (a redelivery counts once), and the last one's data.
 */
function heard(hotelIds) {
  const deliveries = must(http.get(`${WEBHOOK_URL}/received`), 200, 'read the receiver');
  const seen = new Set();
  const byReservation = new Map();
  for (const delivery of deliveries) {
    if (seen.has(delivery.id)) continue;
    seen.add(delivery.id);
    const event = JSON.parse(delivery.body);
    if (!hotelIds.has(event.data.hotel_id)) continue;
    const events = byReservation.get(event.data.reservation_id) || [];
    events.push(event);
    byReservation.set(event.data.reservation_id, events);
  }
  return { deliveries, byReservation };
}

/** The events a reservation's history must have sent, in order. */
function expectedTypes(reservation) {
  const types = ['reservation.created'];
  if (reservation.status !== 'pending') types.push(`reservation.${reservation.status}`);
  return types;
}

export function teardown(data) {
  if (!data.endpoint) return;
  const tagged = { webhooks: 'yes' };
  const hotelIds = new Set(data.hotels.map((h) => h.hotel_id));
  const reservations = data.hotels.flatMap((h) => reservationsOf(h.hotel_id));
  const arrived = (got) => reservations.every((r) => {
    const events = got.byReservation.get(r.reservation_id) || [];
    return events.length >= expectedTypes(r).length;
  });
  let got = heard(hotelIds);
  for (let waited = 0; !arrived(got) && waited < DELIVERY_DEADLINE_S; waited += 0.5) {
    sleep(0.5);
    got = heard(hotelIds);
  }
  const problems = [];
  for (const r of reservations) {
    const events = got.byReservation.get(r.reservation_id) || [];
    const types = events.map((e) => e.type).join(' > ');
    if (types !== expectedTypes(r).join(' > ')) {
      problems.push(`${r.reservation_id} (${r.status}): heard ${types || 'nothing'}`);
    } else if (events[events.length - 1].data.status !== r.status) {
      problems.push(`${r.reservation_id}: the last event shows ${events[events.length - 1].data.status}, not ${r.status}`);
    }
  }
  const known = new Set(reservations.map((r) => r.reservation_id));
  for (const id of got.byReservation.keys()) {
    if (!known.has(id)) problems.push(`${id}: events for a reservation that is not stored`);
  }
  const unsigned = got.deliveries.filter((d) => !signed(d, data.endpoint.secret));
  const misnamed = got.deliveries.filter((d) => JSON.parse(d.body).id !== d.id);
  check(reservations, { 'the funnel committed reservations': (rs) => rs.length > 0 }, tagged);
  check(problems, {
    "every committed reservation's events arrived, in order": (p) => p.length === 0,
  }, tagged);
  check(unsigned, { "every delivery is signed with the endpoint's secret": (u) => u.length === 0 }, tagged);
  check(misnamed, { 'every webhook-id is its event id': (m) => m.length === 0 }, tagged);
  must(http.del(`${BASE_URL}/v1/webhook-endpoints/${data.endpoint.id}`, null, staff()), 204, 'delete the endpoint');
  if (problems.length || unsigned.length || misnamed.length) {
    fail(`webhooks: ${problems.slice(0, 5).join('; ')}; ${unsigned.length} unsigned, ${misnamed.length} misnamed`);
  }
}
