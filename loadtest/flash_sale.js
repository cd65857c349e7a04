// flash_sale.js: one hot room type with few rooms, and many VUs booking the same stay.
//
//   k6 run -e BASE_URL=... -e STAFF_TOKEN=... -e GUEST_TOKEN=... \
//          -e DURATION=30s -e RATE=500 -e VUS=200 -e ROOMS=20 loadtest/flash_sale.js
//
// RATE booking attempts per second (each a new reservation id) for the same 2-night stay
// of a room type with ROOMS rooms (default 10) at overbooking ratio 1.10, from up to VUS
// VUs (default 100). Past the first few, the answer is 409 sold_out, which is expected.
// At the end, teardown() checks through the API that exactly the sellable capacity,
// floor(ROOMS * 1.1), was sold on every night, and fails the run otherwise.
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import {
  BASE_URL, DURATION, RATE, createHotel, booking, guest, uuid, isProblem,
  inventoryOf, checkNightsMatchReservations,
} from './lib.js';

// 409 sold_out (and request_in_progress) are answers the API promises under load, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const ROOMS = Number(__ENV.ROOMS || 10);
const VUS = Number(__ENV.VUS || 100);
const created = new Counter('reservations_created');
const soldOut = new Counter('reservations_sold_out');

export const options = {
  scenarios: {
    flash_sale: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: VUS, maxVUs: VUS,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{name:POST /v1/reservations}': ['p(95)<1000'],
    reservations_created: ['count>0'],
  },
};

export function setup() {
  return { hot: createHotel(`Flash sale ${uuid().slice(0, 8)}`, ROOMS, 30, 32) };
}

export default function (data) {
  const res = http.post(`${BASE_URL}/v1/reservations`, booking(uuid(), data.hot, 30, 2),
    guest({ name: 'POST /v1/reservations' }));
  if (res.status === 201) created.add(1);
  if (isProblem(res, 'sold_out')) soldOut.add(1);
  check(res, { 'reserved or sold out': (r) => r.status === 201 || isProblem(r, 'sold_out') });
}

export function teardown(data) {
  const problems = checkNightsMatchReservations(data.hot);
  const nights = inventoryOf(data.hot);
  for (const night of nights) {
    if (night.total_reserved !== data.hot.capacity) {
      problems.push(`${night.date}: sold ${night.total_reserved}, sellable ${data.hot.capacity}`);
    }
  }
  const exact = check(problems, { 'exactly the sellable capacity was sold': (p) => p.length === 0 });
  if (!exact) {
    fail(`flash sale did not sell exactly ${data.hot.capacity} rooms a night: ${problems.join('; ')}`);
  }
}
